package middleware_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/observekit/observe"
	"github.com/observekit/observe/middleware"
)

// benchInit starts observe with spans kept in process and no admin listener.
func benchInit(b *testing.B, opts ...observe.Option) {
	b.Helper()
	b.Setenv("OBSERVE_ADMIN_ADDR", "off")
	b.Setenv("OTEL_TRACES_EXPORTER", "")
	b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	obs, err := observe.Init(context.Background(), append([]observe.Option{observe.WithLogWriter(io.Discard), observe.WithAccessLog(false)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = obs.Shutdown(context.Background()) })
}

func benchMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok"))
	})
	return mux
}

func runHandler(b *testing.B, h http.Handler, traceparent string) {
	req := httptest.NewRequest("GET", "/users/42", nil)
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.ServeHTTP(w, req)
	}
}

// discardWriter is a ResponseWriter that costs nothing, so the benchmark
// measures the middleware, not the recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkHTTPBare is the ServeMux alone: the baseline.
func BenchmarkHTTPBare(b *testing.B) {
	runHandler(b, benchMux(), "")
}

// BenchmarkHTTPSampled is a sampled request (new root trace) through the
// middleware: span, metrics with exemplar, route.
func BenchmarkHTTPSampled(b *testing.B) {
	benchInit(b)
	runHandler(b, middleware.HTTP(benchMux()), "")
}

// BenchmarkHTTPUnsampled continues an unsampled incoming trace.
func BenchmarkHTTPUnsampled(b *testing.B) {
	benchInit(b)
	runHandler(b, middleware.HTTP(benchMux()), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
}

// BenchmarkHTTPDisabled is the middleware with OTEL_SDK_DISABLED=true.
func BenchmarkHTTPDisabled(b *testing.B) {
	b.Setenv("OTEL_SDK_DISABLED", "true")
	benchInit(b)
	runHandler(b, middleware.HTTP(benchMux()), "")
}

// BenchmarkHTTPSampledAccessLog is BenchmarkHTTPSampled with the access log
// line on (the default), written to io.Discard: what a request costs at
// default settings, but for the write itself.
func BenchmarkHTTPSampledAccessLog(b *testing.B) {
	benchInit(b, observe.WithAccessLog(true))
	runHandler(b, middleware.HTTP(benchMux()), "")
}

// BenchmarkHTTPParallel is BenchmarkHTTPSampledAccessLog from many
// goroutines at once, as a loaded server runs it, against the bare mux.
func BenchmarkHTTPParallel(b *testing.B) {
	run := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			req := httptest.NewRequest("GET", "/users/42", nil)
			w := &discardWriter{h: http.Header{}}
			for pb.Next() {
				h.ServeHTTP(w, req)
			}
		})
	}
	b.Run("bare", func(b *testing.B) { run(b, benchMux()) })
	b.Run("sampled", func(b *testing.B) {
		benchInit(b, observe.WithAccessLog(true))
		run(b, middleware.HTTP(benchMux()))
	})
	b.Run("unsampled", func(b *testing.B) {
		b.Setenv("OTEL_TRACES_SAMPLER", "always_off")
		benchInit(b, observe.WithAccessLog(true))
		run(b, middleware.HTTP(benchMux()))
	})
}
