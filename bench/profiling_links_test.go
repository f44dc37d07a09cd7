package bench

import (
	"context"
	"runtime/pprof"
	"testing"

	otelpyroscope "github.com/grafana/otel-profiling-go"
	"github.com/observekit/observe/internal/profiling"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Span↔profile links, side by side: observe's profiling.LinkSpans and
// grafana/otel-profiling-go, each around the same SDK provider, against the
// bare SDK. A request is a sampled local root span started and ended as an
// HTTP server middleware does, with one child span inside.
//
//	cd bench && go test -run '^$' -bench ProfileLinks -benchmem -count 5
//
// What differs besides speed: otel-profiling-go has no endpoint label, adds
// trace_id, labels unsampled spans too (span_name), relabels the goroutine
// at every child span, and does not update its labels on SetName.

func linkProviders(b *testing.B) map[string]trace.TracerProvider {
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	return map[string]trace.TracerProvider{
		"sdk":               sdk,
		"observe":           profiling.LinkSpans(sdk),
		"otel-profiling-go": otelpyroscope.NewTracerProvider(sdk),
	}
}

func BenchmarkProfileLinks(b *testing.B) {
	startAttrs := trace.WithAttributes(
		attribute.String("http.request.method", "GET"),
		attribute.String("url.path", "/users/42"),
		attribute.String("http.route", "/users/{id}"),
	)
	kind := trace.WithSpanKind(trace.SpanKindServer)
	end := []attribute.KeyValue{attribute.Int("http.response.status_code", 200), attribute.String("http.route", "/users/{id}")}
	for _, name := range []string{"sdk", "observe", "otel-profiling-go"} {
		tr := linkProviders(b)[name].Tracer("bench")
		b.Run("root/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, span := tr.Start(context.Background(), "GET /users/{id}", kind, startAttrs)
				span.SetAttributes(end...)
				span.SetName("GET /users/{id}")
				span.End()
			}
		})
		b.Run("root+child/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ctx, span := tr.Start(context.Background(), "GET /users/{id}", kind, startAttrs)
				_, child := tr.Start(ctx, "SELECT users")
				child.End()
				span.SetAttributes(end...)
				span.End()
			}
		})
	}
	pprof.SetGoroutineLabels(context.Background())
}
