package profiling

import (
	"context"
	"encoding/binary"
	"runtime/pprof"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// The per-request cost of span↔profile links is the difference between the
// "linked" and "sdk" rows: a sampled local root span started and ended as
// observe's HTTP middleware does (route known at start, SetAttributes and
// SetName at the end).
//
//	go test -run '^$' -bench 'Span' -benchmem -count 5 ./profiling/

func benchProviders(b *testing.B, sampler sdktrace.Sampler) map[string]trace.Tracer {
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler))
	b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	return map[string]trace.Tracer{
		"sdk":    sdk.Tracer("bench"),
		"linked": LinkSpans(sdk).Tracer("bench"),
	}
}

var benchStartAttrs = []attribute.KeyValue{
	attribute.String("http.request.method", "GET"),
	attribute.String("url.path", "/users/42"),
	attribute.String("url.scheme", "http"),
	attribute.String("server.address", "example.com"),
	attribute.String("http.route", "/users/{id}"),
}

func benchRequest(b *testing.B, tr trace.Tracer, startName string, appLabels bool) {
	app := context.Background()
	if appLabels {
		app = pprof.WithLabels(app, pprof.Labels("tenant", "acme"))
	}
	pprof.SetGoroutineLabels(app)
	defer pprof.SetGoroutineLabels(context.Background())
	// One slice for every Start: the variadic call would allocate it.
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(benchStartAttrs...)}
	end := []attribute.KeyValue{attribute.Int("http.response.status_code", 200), attribute.String("http.route", "/users/{id}")}
	b.ReportAllocs()
	for b.Loop() {
		_, span := tr.Start(app, startName, opts...)
		span.SetAttributes(end...)
		span.SetName("GET /users/{id}")
		span.End()
	}
}

// BenchmarkRootSpan: the route is known when the span starts (observe's
// middleware, or any instrumentation naming spans "{METHOD} {route}").
func BenchmarkRootSpan(b *testing.B) {
	for name, tr := range benchProviders(b, sdktrace.AlwaysSample()) {
		b.Run(name, func(b *testing.B) { benchRequest(b, tr, "GET /users/{id}", false) })
	}
}

// BenchmarkRootSpanAppLabels: the application set pprof labels of its own
// before the span (merging them costs pprof two more allocations).
func BenchmarkRootSpanAppLabels(b *testing.B) {
	for name, tr := range benchProviders(b, sdktrace.AlwaysSample()) {
		b.Run(name, func(b *testing.B) { benchRequest(b, tr, "GET /users/{id}", true) })
	}
}

// BenchmarkRootSpanRouteLate: the span starts named after the bare method
// and learns its route at the end (the labels are rebuilt once more).
func BenchmarkRootSpanRouteLate(b *testing.B) {
	for name, tr := range benchProviders(b, sdktrace.AlwaysSample()) {
		b.Run(name, func(b *testing.B) { benchRequest(b, tr, "GET", false) })
	}
}

// BenchmarkUnsampledRootSpan: unsampled requests pass through.
func BenchmarkUnsampledRootSpan(b *testing.B) {
	for name, tr := range benchProviders(b, sdktrace.NeverSample()) {
		b.Run(name, func(b *testing.B) { benchRequest(b, tr, "GET /users/{id}", false) })
	}
}

// BenchmarkChildSpan: spans inside a request pass through.
func BenchmarkChildSpan(b *testing.B) {
	for name, tr := range benchProviders(b, sdktrace.AlwaysSample()) {
		b.Run(name, func(b *testing.B) {
			ctx, root := tr.Start(context.Background(), "GET /users/{id}")
			defer root.End()
			b.ReportAllocs()
			for b.Loop() {
				_, span := tr.Start(ctx, "SELECT users")
				span.End()
			}
		})
	}
}

// BenchmarkLinkingAlone isolates the linking work: the wrapped tracer is a
// stub returning a recorded span (a new span ID each time) at no cost of its
// own, so ns/op and allocs/op are those of LinkSpans for one request (Start
// with the route in the name, the middleware's SetAttributes and SetName at
// the end, End). Less exposed to a busy machine than the differences above.
func BenchmarkLinkingAlone(b *testing.B) {
	for _, appLabels := range []bool{false, true} {
		name := "no-app-labels"
		if appLabels {
			name = "app-labels"
		}
		b.Run(name, func(b *testing.B) {
			benchRequest(b, LinkSpans(stubProvider{}).Tracer("bench"), "GET /users/{id}", appLabels)
		})
	}
}

type stubProvider struct{ noop.TracerProvider }

func (stubProvider) Tracer(string, ...trace.TracerOption) trace.Tracer { return &stubTracer{} }

type stubTracer struct {
	noop.Tracer
	span stubSpan
	n    uint64
}

func (t *stubTracer) Start(ctx context.Context, _ string, _ ...trace.SpanStartOption) (context.Context, trace.Span) {
	t.n++
	var id trace.SpanID
	binary.BigEndian.PutUint64(id[:], t.n)
	t.span.sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: id, TraceFlags: trace.FlagsSampled})
	return ctx, &t.span
}

type stubSpan struct {
	noop.Span
	sc trace.SpanContext
}

func (s *stubSpan) SpanContext() trace.SpanContext { return s.sc }
func (s *stubSpan) IsRecording() bool              { return true }
