package integration

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/testbackend"
)

// profInit starts observe for a profiling test with env set on top of a
// cleared environment (a developer's shell may carry any of these), logs
// discarded, and Shutdown at the test's end.
func profInit(t *testing.T, env map[string]string, opts ...observe.Option) *observe.Observer {
	t.Helper()
	for _, v := range []string{
		"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME",
		"OBSERVE_ADMIN_TOKEN", "PYROSCOPE_SERVER_ADDRESS", "PYROSCOPE_BASIC_AUTH_USER", "PYROSCOPE_BASIC_AUTH_PASSWORD",
	} {
		t.Setenv(v, "")
	}
	t.Setenv("OBSERVE_ADMIN_ADDR", "off")
	for k, v := range env {
		t.Setenv(k, v)
	}
	base := []observe.Option{
		observe.WithServiceName("checkout"),
		observe.WithServiceVersion("1.4.2"),
		observe.WithEnvironment("staging"),
		observe.WithLogWriter(io.Discard),
		observe.WithAccessLog(false),
	}
	obs, err := observe.Init(context.Background(), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, shutAlready := profShutDown.LoadAndDelete(obs); !shutAlready {
			profShutdown(t, obs, 10*time.Second)
		}
	})
	return obs
}

// profShutDown holds the observers a test shut down itself, checking the
// result as it expected.
var profShutDown sync.Map

// profShutdown shuts obs down within d (idempotent, so tests may call it
// early to flush the last profiles).
func profShutdown(t *testing.T, obs *observe.Observer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := obs.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// profBurn does about d of CPU work on an idle machine (a fixed amount of
// work, so that a busy machine stretches the time, not the number of CPU
// samples); its name marks the samples it takes.
//
//go:noinline
func profBurn(d time.Duration) {
	sum := sha256.Sum256([]byte("profBurn"))
	for range d / (125 * time.Nanosecond) { // one hash: about 125ns
		sum = sha256.Sum256(sum[:])
	}
	runtime.KeepAlive(sum)
}

// profBurnAfterSpan is profBurn under another name, for the work a request
// does after its span has ended.
//
//go:noinline
func profBurnAfterSpan(d time.Duration) { profBurn(d) }

// profAppLabels is the application's own middleware: it labels the
// request's goroutine (tenant=acme) before observe's middleware runs, and
// does some work after it returned.
func profAppLabels(next http.Handler, after time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pprof.Do(r.Context(), pprof.Labels("tenant", "acme"), func(ctx context.Context) {
			next.ServeHTTP(w, r.WithContext(ctx))
			if after > 0 {
				profBurnAfterSpan(after)
			}
		})
	})
}

// profStackHas reports whether function fn (package-qualified suffix, like
// ".profBurn") is on the sample's stack.
func profStackHas(s *profile.Sample, fn string) bool {
	for _, loc := range s.Location {
		for _, ln := range loc.Line {
			if ln.Function != nil && strings.HasSuffix(ln.Function.Name, fn) {
				return true
			}
		}
	}
	return false
}

func profLabel(s *profile.Sample, key string) string {
	if v := s.Label[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// profCPUUploads returns the CPU profiles received.
func profCPUUploads(ups []testbackend.PyroscopeUpload) []testbackend.PyroscopeUpload {
	var out []testbackend.PyroscopeUpload
	for _, u := range ups {
		if u.IsCPU() {
			out = append(out, u)
		}
	}
	return out
}

func profHasType(ups []testbackend.PyroscopeUpload, sampleType string) bool {
	for _, u := range ups {
		if u.HasSampleType(sampleType) {
			return true
		}
	}
	return false
}
