//go:build unix

package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/metrics"
	"github.com/observekit/observe/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The metrics part of observe's HTTP middleware against promhttp's
// instrumentation (InstrumentHandlerInFlight + InstrumentHandlerCounter +
// InstrumentHandlerDuration, the usual trio), around the same ServeMux, in
// the same run:
//
//	cd bench && go test -run '^$' -bench MetricsMiddleware -benchmem -count 5
//
//   - bare: the ServeMux alone, the baseline to subtract;
//   - promhttp: in-flight gauge, counter and duration histogram by code and
//     method (the semconv buckets, so the histograms are alike);
//   - observe: middleware.HTTP with metrics and no tracing: active-requests
//     gauge, duration histogram by method, route and status, response body
//     size histogram (more than promhttp records: the route label and a
//     size);
//   - observe_traced: the whole middleware after observe.Init, a sampled
//     span per request, exemplars included, for context.

func metricsBenchMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok"))
	})
	return mux
}

// metricsDiscardWriter costs nothing, so the benchmark measures the
// instrumentation, not a recorder.
type metricsDiscardWriter struct{ h http.Header }

func (d *metricsDiscardWriter) Header() http.Header         { return d.h }
func (d *metricsDiscardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *metricsDiscardWriter) WriteHeader(int)             {}

func runMetricsBench(b *testing.B, h http.Handler) {
	req := httptest.NewRequest("GET", "/users/42", nil)
	w := &metricsDiscardWriter{h: http.Header{}}
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
	reportCPU(b, cpu)
}

// processCPU is the process's user+system CPU time. On a shared machine
// wall-clock ns/op counts the time the benchmark was not running at all;
// cpu-ns/op (GC work included) does not.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

func promhttpChain(next http.Handler) http.Handler {
	reg := prometheus.NewRegistry()
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{Name: "http_requests_in_flight", Help: "In flight."})
	counter := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "Requests."}, []string{"code", "method"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_request_duration_seconds", Help: "Duration.", Buckets: metrics.DefaultDurationBuckets,
	}, []string{"code", "method"})
	reg.MustRegister(inFlight, counter, duration)
	return promhttp.InstrumentHandlerInFlight(inFlight,
		promhttp.InstrumentHandlerCounter(counter,
			promhttp.InstrumentHandlerDuration(duration, next)))
}

func BenchmarkMetricsMiddleware(b *testing.B) {
	b.Run("bare", func(b *testing.B) {
		runMetricsBench(b, metricsBenchMux())
	})
	b.Run("promhttp", func(b *testing.B) {
		runMetricsBench(b, promhttpChain(metricsBenchMux()))
	})
	b.Run("observe", func(b *testing.B) {
		metricsOnly(b)
		runMetricsBench(b, middleware.HTTP(metricsBenchMux()))
	})
	b.Run("observe_traced", func(b *testing.B) {
		b.Setenv("OBSERVE_ADMIN_ADDR", "off")
		b.Setenv("OTEL_TRACES_EXPORTER", "")
		b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
		b.Setenv("OTEL_SDK_DISABLED", "")
		obs, err := observe.Init(context.Background(), observe.WithLogWriter(io.Discard), observe.WithAccessLog(false))
		if err != nil {
			b.Fatal(err)
		}
		defer obs.Shutdown(context.Background())
		runMetricsBench(b, middleware.HTTP(metricsBenchMux()))
	})
}

// BenchmarkMetricsMiddlewareParallel is the same on every core at once.
func BenchmarkMetricsMiddlewareParallel(b *testing.B) {
	par := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		cpu := processCPU()
		b.RunParallel(func(pb *testing.PB) {
			req := httptest.NewRequest("GET", "/users/42", nil)
			w := &metricsDiscardWriter{h: http.Header{}}
			for pb.Next() {
				h.ServeHTTP(w, req)
			}
		})
		reportCPU(b, cpu)
	}
	b.Run("bare", func(b *testing.B) { par(b, metricsBenchMux()) })
	b.Run("promhttp", func(b *testing.B) { par(b, promhttpChain(metricsBenchMux())) })
	b.Run("observe", func(b *testing.B) {
		metricsOnly(b)
		par(b, middleware.HTTP(metricsBenchMux()))
	})
}
