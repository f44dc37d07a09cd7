package logging

// Benchmarks of the hot path: one 10-attribute line with a span in the
// context, and a disabled level. The same scenario against zap and zerolog
// is in bench/logging_bench_test.go (a module of its own, so the peers stay
// out of observe's go.mod). Numbers: see the issue note / commit message;
// run with
//
//	go test -run '^$' -bench 'TenAttrs|Disabled|Pipeline' -benchmem -count 5 ./logging/

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/observekit/observe/internal/wiring"
	"github.com/observekit/observe/redact"
	slogmulti "github.com/samber/slog-multi"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/trace"
)

func benchSpanCtx() context.Context {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	return trace.ContextWithSpanContext(context.Background(), sc)
}

// logTen writes the benchmark's line: 10 attributes of the usual kinds.
func logTen(ctx context.Context, l *slog.Logger) {
	l.LogAttrs(ctx, slog.LevelInfo, "request handled",
		slog.String("method", "GET"),
		slog.String("route", "/users/{id}"),
		slog.Int("status", 200),
		slog.Duration("elapsed", 1234*time.Microsecond),
		slog.Int64("bytes", 5123),
		slog.String("user", "u-1234"),
		slog.Bool("cache_hit", true),
		slog.Float64("ratio", 0.75),
		slog.String("region", "eu-west-1"),
		slog.Int("attempt", 1),
	)
}

// observeOptions is what observe.Init builds: service fields and the
// default redaction policy.
func observeOptions() Options {
	return Options{
		Writer: io.Discard,
		Fields: []slog.Attr{
			slog.String("service.name", "checkout"),
			slog.String("service.version", "1.4.2"),
			slog.String("deployment.environment", "prod"),
		},
		Redactor: redact.Default(),
	}
}

func runTen(b *testing.B, l *slog.Logger) {
	ctx := benchSpanCtx()
	b.ReportAllocs()
	// cpu-ns/op: the thread's CPU time per line, which a loaded machine
	// (shared CI, a laptop building) disturbs far less than ns/op.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := threadCPU()
	for b.Loop() {
		logTen(ctx, l)
	}
	if cpu := threadCPU() - start; cpu > 0 {
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkTenAttrs is the comparison: the observe logger (with
// redaction, service fields and trace correlation) against
// slog.JSONHandler writing the same attributes.
func BenchmarkTenAttrs(b *testing.B) {
	b.Run("observe", func(b *testing.B) { runTen(b, slog.New(New(observeOptions()))) })
	b.Run("observe-no-redaction", func(b *testing.B) {
		o := observeOptions()
		o.Redactor = nil
		runTen(b, slog.New(New(o)))
	})
	b.Run("slog.JSONHandler", func(b *testing.B) { runTen(b, slog.New(slog.NewJSONHandler(io.Discard, nil))) })
}

// BenchmarkPipeline measures what the stages cost on the JSON path.
func BenchmarkPipeline(b *testing.B) {
	b.Run("inline-redaction", func(b *testing.B) { runTen(b, slog.New(New(observeOptions()))) })
	// The alternative the package does not take: redaction as a generic
	// slog-multi stage rebuilding the record in front of the writer.
	b.Run("slog-multi-redaction-stage", func(b *testing.B) {
		o := observeOptions()
		pol := o.Redactor
		o.Redactor = nil
		h := slogmulti.Pipe(slogmulti.NewHandleInlineMiddleware(func(ctx context.Context, r slog.Record, next func(context.Context, slog.Record) error) error {
			nr := slog.NewRecord(r.Time, r.Level, pol.String(r.Message), r.PC)
			r.Attrs(func(a slog.Attr) bool { nr.AddAttrs(pol.Attr(a)); return true })
			return next(ctx, nr)
		})).Handler(New(o))
		runTen(b, slog.New(h))
	})
	b.Run("sampling-stage", func(b *testing.B) {
		o := observeOptions()
		o.Sampling = SampleRates{Debug: 0.1} // INFO unsampled: the stage's cost alone
		runTen(b, slog.New(New(o)))
	})
	b.Run("fanout-otlp-bridge", func(b *testing.B) {
		// The export branch to an SDK provider with no processor: the cost
		// of fanout, redaction for the bridge and the bridge's conversion.
		o := observeOptions()
		o.LoggerProvider = sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(discardExporter{})))
		runTen(b, slog.New(New(o)))
	})
	b.Run("fanout-otlp-provider", func(b *testing.B) {
		// observe's own Provider: the caller prepares and queues the
		// record, the worker converts it (cpu-ns/op counts both).
		o := observeOptions()
		prov, err := NewLoggerProvider(b.Context(), OTLPConfig{Exporter: discardExporter{}, ExportInterval: 10 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		defer prov.Shutdown(context.Background())
		o.LoggerProvider = prov
		runTen(b, slog.New(New(o)))
	})
}

type discardExporter struct{}

func (discardExporter) Export(context.Context, []sdklog.Record) error { return nil }
func (discardExporter) Shutdown(context.Context) error                { return nil }
func (discardExporter) ForceFlush(context.Context) error              { return nil }

// BenchmarkDisabled: a DEBUG line at INFO, with a span in the context.
func BenchmarkDisabled(b *testing.B) {
	ctx := benchSpanCtx()
	run := func(b *testing.B, l *slog.Logger) {
		b.ReportAllocs()
		for b.Loop() {
			l.LogAttrs(ctx, slog.LevelDebug, "cache miss", slog.String("key", "k"), slog.Int("n", 1))
		}
	}
	h := New(observeOptions())
	b.Run("observe", func(b *testing.B) { run(b, slog.New(h)) })
	b.Run("observe-named", func(b *testing.B) {
		wiring.LogRoot.Store(h)
		defer wiring.LogRoot.Store(nil)
		if _, err := h.levels().Set("other", slog.LevelDebug, 0, nil); err != nil {
			b.Fatal(err)
		}
		run(b, Named("db.pool"))
	})
	b.Run("slog.JSONHandler", func(b *testing.B) { run(b, slog.New(slog.NewJSONHandler(io.Discard, nil))) })
}
