package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/observekit/observe"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Tracing benchmarks: observe's middleware against otelhttp/otelgrpc with
// the OpenTelemetry SDK, on equal terms:
//
//   - the same sampler (parentbased_always_on) and propagators
//     (tracecontext, baggage);
//   - spans go through a batch processor to an exporter that discards them
//     (observe: its own bounded batch processor and in-process span store;
//     otel: the SDK's BatchSpanProcessor);
//   - metrics are recorded by both (observe: its Prometheus RED histograms;
//     otel: an SDK MeterProvider with a manual reader), with a variant of
//     otelhttp without metrics for reference;
//   - observe's access log is off (otelhttp has none).
//
// Sampled: a request without traceparent (new sampled root). Unsampled: a
// request continuing an incoming unsampled traceparent.

const unsampledTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"

// discardExporter drops spans: the benchmarks measure the request path.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// traceObserve starts observe as a service would, spans discarded.
func traceObserve(b *testing.B) {
	b.Helper()
	b.Setenv("OTEL_TRACES_SAMPLER", "")
	traceObserveSampler(b)
}

// traceObserveSampler is traceObserve keeping OTEL_TRACES_SAMPLER as set.
func traceObserveSampler(b *testing.B) {
	b.Helper()
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_PROPAGATORS", "PYROSCOPE_SERVER_ADDRESS"} {
		b.Setenv(k, "")
	}
	obs, err := observe.Init(context.Background(),
		observe.WithServiceName("bench"),
		observe.WithAdminAddr("off"),
		observe.WithLogWriter(io.Discard),
		observe.WithAccessLog(false),
		observe.WithSpanExporter(discardExporter{}),
	)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = obs.Shutdown(context.Background()) })
}

// otelSDK is the OpenTelemetry SDK set up like observe: batch processor to
// a discarding exporter, parentbased_always_on; with a metric SDK or not.
type otelSDK struct {
	tp   *sdktrace.TracerProvider
	mp   *sdkmetric.MeterProvider
	prop propagation.TextMapPropagator
}

func newOtelSDK(b *testing.B) *otelSDK {
	b.Helper()
	s := &otelSDK{
		tp: sdktrace.NewTracerProvider(
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
			sdktrace.WithBatcher(discardExporter{}),
		),
		mp:   sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())),
		prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	b.Cleanup(func() {
		_ = s.tp.Shutdown(context.Background())
		_ = s.mp.Shutdown(context.Background())
	})
	return s
}

func (s *otelSDK) handler(next http.Handler, metrics bool) http.Handler {
	opts := []otelhttp.Option{otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(s.prop)}
	if metrics {
		opts = append(opts, otelhttp.WithMeterProvider(s.mp))
	} else {
		opts = append(opts, otelhttp.WithMeterProvider(noop.NewMeterProvider()))
	}
	return otelhttp.NewHandler(next, "server", opts...)
}

func traceMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok"))
	})
	return mux
}

// nopWriter is a ResponseWriter that costs nothing.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

func runTraceHTTP(b *testing.B, h http.Handler, traceparent string) {
	req := httptest.NewRequest("GET", "http://api.example:8080/users/42", nil)
	req.Header.Set("User-Agent", "bench/1.0")
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	w := &nopWriter{h: http.Header{}}
	h.ServeHTTP(w, req) // warm caches (route series, span names)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
	reportCPU(b, cpu) // metrics_promhttp_test.go: process CPU per op
}

func BenchmarkTraceHTTP(b *testing.B) {
	for _, c := range []struct {
		name, tp string
	}{{"sampled", ""}, {"unsampled", unsampledTP}} {
		b.Run("observe/"+c.name, func(b *testing.B) {
			traceObserve(b)
			runTraceHTTP(b, middleware.HTTP(traceMux()), c.tp)
		})
		b.Run("otelhttp/"+c.name, func(b *testing.B) {
			runTraceHTTP(b, newOtelSDK(b).handler(traceMux(), true), c.tp)
		})
		b.Run("otelhttp-nometrics/"+c.name, func(b *testing.B) {
			runTraceHTTP(b, newOtelSDK(b).handler(traceMux(), false), c.tp)
		})
	}
	b.Run("bare", func(b *testing.B) { runTraceHTTP(b, traceMux(), "") })
}
