// Package profiling runs continuous profiling: with a Pyroscope server
// configured, github.com/grafana/pyroscope-go pushes CPU, allocation and
// in-use profiles (goroutines too) tagged with the service's resource.
// Without one, nothing is pushed and pprof stays on observe's admin endpoints.
package profiling

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/grafana/pyroscope-go"
)

// Config is what Start needs.
type Config struct {
	ServerAddress     string            // e.g. http://pyroscope:4040; "" means no push
	ApplicationName   string            // service.name
	Tags              map[string]string // service.version, deployment.environment, host…
	BasicAuthUser     string
	BasicAuthPassword string
	ProfileTypes      []pyroscope.ProfileType // default: CPU, alloc, in-use, goroutines
	Logger            *slog.Logger            // pyroscope's own messages; nil: discarded
}

// DefaultProfileTypes are pushed unless Config.ProfileTypes says otherwise.
var DefaultProfileTypes = []pyroscope.ProfileType{
	pyroscope.ProfileCPU,
	pyroscope.ProfileAllocObjects, pyroscope.ProfileAllocSpace,
	pyroscope.ProfileInuseObjects, pyroscope.ProfileInuseSpace,
	pyroscope.ProfileGoroutines,
}

// Profiler is a running continuous profiler.
type Profiler struct {
	p *pyroscope.Profiler
}

// Start starts pushing profiles. It returns (nil, nil) when no server
// address is configured. It never waits on the network.
func Start(cfg Config) (*Profiler, error) {
	if cfg.ServerAddress == "" {
		return nil, nil
	}
	if len(cfg.ProfileTypes) == 0 {
		cfg.ProfileTypes = DefaultProfileTypes
	}
	pc := pyroscope.Config{
		ApplicationName:   cfg.ApplicationName,
		Tags:              cfg.Tags,
		ServerAddress:     cfg.ServerAddress,
		BasicAuthUser:     cfg.BasicAuthUser,
		BasicAuthPassword: cfg.BasicAuthPassword,
		ProfileTypes:      cfg.ProfileTypes,
	}
	if cfg.Logger != nil {
		pc.Logger = slogLogger{cfg.Logger}
	}
	p, err := pyroscope.Start(pc)
	if err != nil {
		return nil, fmt.Errorf("profiling: %w", err)
	}
	return &Profiler{p: p}, nil
}

// Stop uploads the last profile and stops, by ctx's deadline.
func (p *Profiler) Stop(ctx context.Context) error {
	if p == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.p.Stop()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("profiling: stop: %w", ctx.Err())
	}
}

type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Infof(f string, a ...any)  { s.l.Debug(fmt.Sprintf(f, a...)) }
func (s slogLogger) Debugf(f string, a ...any) { s.l.Debug(fmt.Sprintf(f, a...)) }
func (s slogLogger) Errorf(f string, a ...any) { s.l.Warn(fmt.Sprintf(f, a...)) }
