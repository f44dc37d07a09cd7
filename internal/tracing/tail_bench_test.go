package tracing_test

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/internal/tracing"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Per-request cost of local tail sampling against head sampling keeping
// the same fraction. Tail: 1% baseline, every error (1% of requests), and
// what is above the route's p99 (about 1%): about 3% kept. Head:
// parentbased_traceidratio at 0.03. Each reports the fraction it kept;
// always_on (everything recorded and exported) gives the scale.
//
//	go test ./tracing/ -run '^$' -bench TailVsHead -count 5

const (
	benchTailBaseline = 0.01
	benchHeadRatio    = 0.03
)

// countingExporter counts exported local roots, to report the kept fraction.
type countingExporter struct{ roots atomic.Int64 }

func (c *countingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	for _, s := range spans {
		if !s.Parent().IsValid() || s.Parent().IsRemote() {
			c.roots.Add(1)
		}
	}
	return nil
}

func (c *countingExporter) Shutdown(context.Context) error { return nil }

func reportKept(b *testing.B, p *tracing.Provider, exp *countingExporter) {
	b.StopTimer()
	_ = p.ForceFlush(context.Background())
	b.ReportMetric(100*float64(exp.roots.Load())/float64(b.N), "kept%")
}

// BenchmarkTailVsHeadSDK: a request is a local root with three children and
// a few attributes, through a tracing.Provider (store and batch queue).
func BenchmarkTailVsHeadSDK(b *testing.B) {
	run := func(b *testing.B, cfg tracing.Config) {
		exp := &countingExporter{}
		cfg.Exporter, cfg.SpanExporter = "custom", exp
		p, err := tracing.New(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = p.Shutdown(context.Background()) })
		tr := p.Tracer()
		attrs := []attribute.KeyValue{attribute.String("http.request.method", "GET"), attribute.String("url.path", "/orders/42")}
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			rctx, root := tr.Start(ctx, "GET /orders/{id}", trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
			for c := 0; c < 3; c++ {
				_, child := tr.Start(rctx, "SELECT orders")
				child.SetAttributes(attribute.Int("db.rows", c))
				child.End()
			}
			if i%100 == 0 {
				root.SetStatus(codes.Error, "boom")
			}
			root.End()
		}
		reportKept(b, p, exp)
	}
	b.Run("head", func(b *testing.B) {
		run(b, tracing.Config{Sampler: sdktrace.ParentBased(sdktrace.TraceIDRatioBased(benchHeadRatio))})
	})
	b.Run("tail", func(b *testing.B) {
		run(b, tracing.Config{Tail: &tracing.TailConfig{Baseline: benchTailBaseline, LatencyQuantile: 0.99}})
	})
	// For scale: recording and exporting everything.
	b.Run("always_on", func(b *testing.B) {
		run(b, tracing.Config{Sampler: sdktrace.AlwaysSample()})
	})
}

// BenchmarkTailVsHeadHTTP: a request through middleware.HTTP (server span,
// metrics with exemplar check, one handler span), observe configured by the
// environment as a user would.
func BenchmarkTailVsHeadHTTP(b *testing.B) {
	run := func(b *testing.B, sampler, arg string) {
		b.Setenv("OBSERVE_ADMIN_ADDR", "off")
		b.Setenv("OTEL_TRACES_EXPORTER", "")
		b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
		b.Setenv("OTEL_TRACES_SAMPLER", sampler)
		b.Setenv("OTEL_TRACES_SAMPLER_ARG", arg)
		b.Setenv("OBSERVE_TAIL_LATENCY", "")
		exp := &countingExporter{}
		obs, err := observe.Init(context.Background(), observe.WithLogWriter(io.Discard), observe.WithAccessLog(false), observe.WithSpanExporter(exp))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = obs.Shutdown(context.Background()) })
		var n atomic.Int64
		mux := http.NewServeMux()
		mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
			_, span := otel.Tracer("app").Start(r.Context(), "load order")
			span.End()
			if n.Add(1)%100 == 0 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			_, _ = w.Write([]byte("ok"))
		})
		h := middleware.HTTP(mux)
		req, _ := http.NewRequest("GET", "http://example.com/orders/42", nil)
		w := &benchWriter{h: http.Header{}}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			h.ServeHTTP(w, req)
		}
		reportKept(b, instance.Of(obs).Tracing, exp)
	}
	b.Run("head", func(b *testing.B) { run(b, "parentbased_traceidratio", "0.03") })
	b.Run("tail", func(b *testing.B) { run(b, tracing.TailSamplerName, "0.01") })
	b.Run("always_on", func(b *testing.B) { run(b, "parentbased_always_on", "") })
}

// benchWriter is a ResponseWriter that costs nothing.
type benchWriter struct{ h http.Header }

func (d *benchWriter) Header() http.Header         { return d.h }
func (d *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *benchWriter) WriteHeader(int)             {}
