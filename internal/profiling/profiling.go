// Package profiling runs continuous profiling and links it to traces.
//
// With a Pyroscope server configured, Start pushes CPU, allocation, in-use
// and goroutine profiles (mutex and block profiles on request) with
// github.com/grafana/pyroscope-go, named after the service and tagged with its
// resource. Uploads run in the background and never block the service; when
// the server is down or slow, profiles are dropped and counted
// (DroppedProfiles).
// Without a server nothing is pushed and pprof stays on observe's admin
// endpoints, where CPUProfileHandler serves CPU profiles even while
// continuous profiling runs.
//
// LinkSpans wraps a TracerProvider so that the CPU samples of a request carry
// its span ID, span name and endpoint, and its root span points at them.
//
// The root package observe reads the configuration and calls Start; this
// package never reads the environment.
package profiling

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/grafana/pyroscope-go"
	pyroscopepprof "github.com/grafana/pyroscope-go/http/pprof"
)

// Defaults for Config. The mutex and block rates are the low-overhead ones
// continuous profilers use in production (Datadog's defaults): one mutex
// contention event in 10 is recorded, and blocking events are sampled in
// proportion to their duration with every event of 10µs or more recorded.
// Rates such as SetBlockProfileRate(1) record every event and can cost whole
// percents of CPU in services that block a lot.
const (
	DefaultMutexProfileFraction = 10
	DefaultBlockProfileRate     = 10_000 // nanoseconds
	defaultUploadInterval       = 15 * time.Second
	defaultUploadTimeout        = 10 * time.Second
)

// Config is what Start needs.
type Config struct {
	ServerAddress     string            // e.g. http://pyroscope:4040; "" means no push
	ApplicationName   string            // service.name
	Tags              map[string]string // service_version, deployment_environment, host…
	BasicAuthUser     string
	BasicAuthPassword string
	// ProfileTypes pushed; default defaultProfileTypes, plus the mutex and
	// block types when their rates are set.
	ProfileTypes []pyroscope.ProfileType

	// MutexProfileFraction > 0 turns mutex contention profiling on with
	// runtime.SetMutexProfileFraction (unless the program already set a
	// fraction, which is kept); it is switched off again by Stop. Suggested:
	// DefaultMutexProfileFraction.
	MutexProfileFraction int
	// BlockProfileRate > 0 turns blocking profiling on with
	// runtime.SetBlockProfileRate (nanoseconds); Stop sets it back to 0.
	// Suggested: DefaultBlockProfileRate.
	BlockProfileRate int

	UploadInterval time.Duration // how often profiles are cut and pushed; default 15s
	UploadTimeout  time.Duration // per upload; default 10s

	// Logger receives pyroscope's own messages (at debug) and upload
	// failures (WARN, at most one line a minute); nil discards them.
	Logger *slog.Logger

	// CPUProfiles, when set, receives each CPU profile pushed (gzipped
	// pprof and the time it covers), before it is sent: observe keeps the
	// recent ones for the profile of a trace. It must not keep the request
	// waiting.
	CPUProfiles func(start, end time.Time, pprof []byte)
}

// defaultProfileTypes are pushed unless Config.ProfileTypes says otherwise.
var defaultProfileTypes = []pyroscope.ProfileType{
	pyroscope.ProfileCPU,
	pyroscope.ProfileAllocObjects, pyroscope.ProfileAllocSpace,
	pyroscope.ProfileInuseObjects, pyroscope.ProfileInuseSpace,
	pyroscope.ProfileGoroutines,
}

// Profiler is the process's continuous profiling: the push to Pyroscope, if
// configured, and the runtime profiling rates it set. Its methods are safe on
// a nil *Profiler.
type Profiler struct {
	py      *pyroscope.Profiler // nil: not pushing
	uploads *uploadClient
	target  *pushTarget // where bursts are pushed (burst.go); nil: not pushing

	resetMutex bool
	resetBlock bool

	stopOnce sync.Once
	stopErr  error
}

// Start sets the runtime profiling rates asked for and, with a server
// address, starts pushing profiles. It never waits on the network: an
// unreachable server only shows in DroppedProfiles. Only one pushing
// Profiler may run in a process at a time (pyroscope-go owns the CPU
// profiler).
func Start(cfg Config) (*Profiler, error) {
	p := &Profiler{}
	p.setRates(cfg)
	if cfg.ServerAddress == "" {
		return p, nil
	}
	if cfg.UploadInterval <= 0 {
		cfg.UploadInterval = defaultUploadInterval
	}
	if cfg.UploadTimeout <= 0 {
		cfg.UploadTimeout = defaultUploadTimeout
	}
	types := cfg.ProfileTypes
	if len(types) == 0 {
		types = append([]pyroscope.ProfileType(nil), defaultProfileTypes...)
		if cfg.MutexProfileFraction > 0 {
			types = append(types, pyroscope.ProfileMutexCount, pyroscope.ProfileMutexDuration)
		}
		if cfg.BlockProfileRate > 0 {
			types = append(types, pyroscope.ProfileBlockCount, pyroscope.ProfileBlockDuration)
		}
	}
	log := newUploadLog(cfg.Logger)
	p.uploads = newUploadClient(cfg.UploadTimeout, log)
	p.uploads.cpuTee = cfg.CPUProfiles
	pc := pyroscope.Config{
		ApplicationName:   ApplicationName(cfg.ApplicationName),
		Tags:              Tags(cfg.Tags),
		ServerAddress:     cfg.ServerAddress,
		BasicAuthUser:     cfg.BasicAuthUser,
		BasicAuthPassword: cfg.BasicAuthPassword,
		ProfileTypes:      types,
		UploadRate:        cfg.UploadInterval,
		HTTPClient:        p.uploads,
		Logger:            log,
	}
	py, err := pyroscope.Start(pc)
	if err != nil {
		p.resetRates()
		p.uploads.close()
		return nil, fmt.Errorf("profiling: %w", err)
	}
	p.py = py
	p.target = &pushTarget{addr: cfg.ServerAddress, app: pc.ApplicationName, tags: cfg.Tags, user: cfg.BasicAuthUser, pass: cfg.BasicAuthPassword}
	return p, nil
}

func (p *Profiler) setRates(cfg Config) {
	if cfg.MutexProfileFraction > 0 && runtime.SetMutexProfileFraction(-1) == 0 {
		runtime.SetMutexProfileFraction(cfg.MutexProfileFraction)
		p.resetMutex = true
	}
	if cfg.BlockProfileRate > 0 {
		runtime.SetBlockProfileRate(cfg.BlockProfileRate)
		p.resetBlock = true
	}
}

func (p *Profiler) resetRates() {
	if p.resetMutex {
		runtime.SetMutexProfileFraction(0)
	}
	if p.resetBlock {
		runtime.SetBlockProfileRate(0)
	}
}

// Pushing reports whether profiles are pushed to a Pyroscope server.
func (p *Profiler) Pushing() bool { return p != nil && p.py != nil }

// UploadedProfiles reports how many profiles the server accepted.
func (p *Profiler) UploadedProfiles() uint64 {
	if p == nil || p.uploads == nil {
		return 0
	}
	return p.uploads.uploaded.Load()
}

// DroppedProfiles reports how many profiles never reached the server: the
// upload failed (server down, timeout, an answer other than 200;
// pyroscope-go does not retry) or its queue was full. observe exports it as
// observe_profiles_dropped_total.
func (p *Profiler) DroppedProfiles() uint64 {
	if p == nil || p.uploads == nil {
		return 0
	}
	return p.uploads.failed.Load() + p.uploads.log.queueFull.Load()
}

// ExportFailures reports how many uploads failed (each one is a dropped
// profile too). observe exports it as
// observe_export_failures_total{signal="profiles"}.
func (p *Profiler) ExportFailures() uint64 {
	if p == nil || p.uploads == nil {
		return 0
	}
	return p.uploads.failed.Load()
}

// Stop cuts and uploads the last profiles, stops pushing and resets the
// runtime rates it set, returning by ctx's deadline: past it, uploads still
// in flight are aborted (and counted as dropped) so that nothing keeps
// running. It is idempotent.
func (p *Profiler) Stop(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.stopOnce.Do(func() { p.stopErr = p.stop(ctx) })
	return p.stopErr
}

func (p *Profiler) stop(ctx context.Context) error {
	defer p.resetRates()
	if p.py == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer p.uploads.close()
		// Stop alone would lose the current period (and race the upload
		// of the last CPU profile with the uploaders' exit): flush first.
		p.py.Flush(true)
		_ = p.py.Stop()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		// Uploads fail at once from now on, so the flush above ends.
		p.uploads.abort()
		return fmt.Errorf("profiling: stop: %w", ctx.Err())
	}
}

// CPUProfileHandler serves a CPU profile like net/http/pprof's Profile
// (?seconds=N, default 30), and keeps working while continuous profiling
// runs: the standard handler then fails with "cpu profiling already in use",
// while this one takes the window from pyroscope-go's running collection,
// which still uploads it.
func CPUProfileHandler() http.Handler { return http.HandlerFunc(pyroscopepprof.Profile) }

// ApplicationName turns a service name into a valid Pyroscope application
// name: characters other than letters, digits and "_.-/" become "_".
func ApplicationName(service string) string {
	return sanitize(strings.TrimSpace(service), func(r rune) bool { return isLabelRune(r) || r == '-' || r == '/' })
}

// Tags returns tags valid for Pyroscope: keys keep letters, digits, "_" and
// "."; values lose the characters that delimit tags ("{}=,"); empty keys and
// values are left out.
func Tags(tags map[string]string) map[string]string {
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		k = sanitize(strings.TrimSpace(k), isLabelRune)
		v = sanitize(strings.TrimSpace(v), func(r rune) bool { return !strings.ContainsRune("{}=,", r) && r >= ' ' })
		if k == "" || v == "" || k == "__name__" {
			continue
		}
		out[k] = v
	}
	return out
}

func isLabelRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.'
}

func sanitize(s string, ok func(rune) bool) string {
	return strings.Map(func(r rune) rune {
		if ok(r) {
			return r
		}
		return '_'
	}, s)
}
