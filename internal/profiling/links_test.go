package profiling

import (
	"bytes"
	"context"
	"maps"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"

	"github.com/google/pprof/profile"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// goroutineLabels returns the pprof labels of the calling goroutine, read
// back from a goroutine profile (the runtime offers no other way). The test
// must not run in parallel with another caller.
func goroutineLabels(t *testing.T) map[string]string {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 0); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Sample {
		for _, loc := range s.Location {
			for _, ln := range loc.Line {
				if strings.HasSuffix(ln.Function.Name, "profiling.goroutineLabels") {
					out := map[string]string{}
					for k, v := range s.Label {
						out[k] = v[0]
					}
					return out
				}
			}
		}
	}
	t.Fatal("the calling goroutine is not in the goroutine profile")
	return nil
}

func ctxLabels(ctx context.Context) map[string]string {
	out := map[string]string{}
	pprof.ForLabels(ctx, func(k, v string) bool { out[k] = v; return true })
	return out
}

func wantLabels(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s: labels %v, want %v", what, got, want)
	}
}

func newLinked(t *testing.T, sampler sdktrace.Sampler) (trace.Tracer, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	// Every test starts and ends on unlabelled goroutine state.
	pprof.SetGoroutineLabels(context.Background())
	t.Cleanup(func() { pprof.SetGoroutineLabels(context.Background()) })
	return LinkSpans(sdk).Tracer("test"), rec
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) (string, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.Emit(), true
		}
	}
	return "", false
}

func TestLinkSpansLabelsSampledLocalRoot(t *testing.T) {
	tr, rec := newLinked(t, sdktrace.AlwaysSample())
	app := pprof.WithLabels(context.Background(), pprof.Labels("tenant", "acme"))
	pprof.SetGoroutineLabels(app)

	ctx, root := tr.Start(app, "GET /users/{id}", trace.WithSpanKind(trace.SpanKindServer))
	id := root.SpanContext().SpanID().String()
	want := map[string]string{"tenant": "acme", labelSpanID: id, LabelSpanName: "GET /users/{id}", LabelEndpoint: "/users/{id}"}
	wantLabels(t, "goroutine during the root span", goroutineLabels(t), want)
	wantLabels(t, "context of the root span", ctxLabels(ctx), want)
	if trace.SpanFromContext(ctx) != root {
		t.Error("the returned context does not hold the returned span")
	}
	if root.TracerProvider() == nil || root.TracerProvider() != LinkSpans(root.TracerProvider()) {
		t.Error("the span's TracerProvider is not the linking one")
	}

	// Children change nothing and are not wrapped.
	cctx, child := tr.Start(ctx, "SELECT users")
	if _, wrapped := child.(*linkedSpan); wrapped {
		t.Error("a child span was wrapped")
	}
	wantLabels(t, "goroutine during a child span", goroutineLabels(t), want)
	wantLabels(t, "context of a child span", ctxLabels(cctx), want)
	child.End()
	wantLabels(t, "goroutine after a child span", goroutineLabels(t), want)

	root.End()
	wantLabels(t, "goroutine after the root span", goroutineLabels(t), map[string]string{"tenant": "acme"})

	ended := rec.Ended()
	if len(ended) != 2 {
		t.Fatalf("%d spans ended, want 2", len(ended))
	}
	for _, s := range ended {
		got, ok := attr(s, ProfileIDAttribute)
		switch s.Name() {
		case "GET /users/{id}":
			if got != id {
				t.Errorf("root span: %s = %q (present %v), want %q", ProfileIDAttribute, got, ok, id)
			}
		default:
			if ok {
				t.Errorf("child span has %s", ProfileIDAttribute)
			}
		}
	}
}

func TestLinkSpansLeavesUnsampledAlone(t *testing.T) {
	tr, rec := newLinked(t, sdktrace.NeverSample())
	app := pprof.WithLabels(context.Background(), pprof.Labels("tenant", "acme"))
	pprof.SetGoroutineLabels(app)
	ctx, span := tr.Start(app, "GET /users/{id}")
	if _, wrapped := span.(*linkedSpan); wrapped {
		t.Error("an unsampled span was wrapped")
	}
	wantLabels(t, "goroutine", goroutineLabels(t), map[string]string{"tenant": "acme"})
	wantLabels(t, "context", ctxLabels(ctx), map[string]string{"tenant": "acme"})
	span.End()
	if len(rec.Ended()) != 0 {
		t.Error("an unsampled span was recorded")
	}
}

// recordOnly records every span without sampling it, as a tail sampler
// does until the local root ends.
type recordOnly struct{}

func (recordOnly) ShouldSample(sdktrace.SamplingParameters) sdktrace.SamplingResult {
	return sdktrace.SamplingResult{Decision: sdktrace.RecordOnly}
}
func (recordOnly) Description() string { return "recordOnly" }

func TestLinkSpansLinksRecordedUnsampledRoots(t *testing.T) {
	tr, rec := newLinked(t, recordOnly{})
	ctx, span := tr.Start(context.Background(), "GET /users/{id}")
	if span.SpanContext().IsSampled() || !span.IsRecording() {
		t.Fatal("the sampler does not record-only")
	}
	if got := ctxLabels(ctx)[labelSpanID]; got != span.SpanContext().SpanID().String() {
		t.Errorf("a recorded root span is not linked: labels %v", ctxLabels(ctx))
	}
	span.End()
	if got, _ := attr(rec.Ended()[0], ProfileIDAttribute); got != span.SpanContext().SpanID().String() {
		t.Errorf("%s = %q", ProfileIDAttribute, got)
	}
}

func TestLinkSpansRemoteParentIsLocalRoot(t *testing.T) {
	tr, _ := newLinked(t, sdktrace.ParentBased(sdktrace.NeverSample()))
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3},
		SpanID:     trace.SpanID{4, 5, 6},
		TraceFlags: trace.FlagsSampled,
		Remote:     true,
	})
	ctx, span := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), remote), "pkg.Orders/Get")
	defer span.End()
	if span.SpanContext().TraceID() != remote.TraceID() {
		t.Fatal("the span did not continue the remote trace")
	}
	want := map[string]string{labelSpanID: span.SpanContext().SpanID().String(), LabelSpanName: "pkg.Orders/Get", LabelEndpoint: "pkg.Orders/Get"}
	wantLabels(t, "context", ctxLabels(ctx), want)
}

func TestLinkSpansNewRootInsideRoot(t *testing.T) {
	tr, _ := newLinked(t, sdktrace.AlwaysSample())
	ctx, outer := tr.Start(context.Background(), "GET /a")
	outerLabels := ctxLabels(ctx)
	_, inner := tr.Start(ctx, "batch", trace.WithNewRoot())
	if _, wrapped := inner.(*linkedSpan); !wrapped {
		t.Fatal("a new root was not linked")
	}
	got := goroutineLabels(t)
	if got[labelSpanID] != inner.SpanContext().SpanID().String() || got[LabelSpanName] != "batch" {
		t.Errorf("labels during the new root: %v", got)
	}
	// "batch" has no endpoint of its own: the work still serves the outer
	// request's, which the merge keeps.
	if got[LabelEndpoint] != "/a" {
		t.Errorf("endpoint during the new root: %v", got)
	}
	inner.End()
	wantLabels(t, "after the new root", goroutineLabels(t), outerLabels)
	outer.End()
	wantLabels(t, "after the outer root", goroutineLabels(t), map[string]string{})
}

func TestLinkSpansEndpoint(t *testing.T) {
	tr, _ := newLinked(t, sdktrace.AlwaysSample())
	route := attribute.String("http.route", "/orders/{id}")

	// Route given as an attribute to a span named after the bare method.
	ctx, span := tr.Start(context.Background(), "GET", trace.WithAttributes(attribute.String("url.path", "/orders/42"), route))
	if got := ctxLabels(ctx)[LabelEndpoint]; got != "/orders/{id}" {
		t.Errorf("endpoint from the http.route start attribute: %q", got)
	}
	span.End()

	// Unknown at start: no endpoint, never the path; known later.
	ctx, span = tr.Start(context.Background(), "GET", trace.WithAttributes(attribute.String("url.path", "/orders/42")))
	if got, ok := ctxLabels(ctx)[LabelEndpoint]; ok {
		t.Errorf("endpoint %q before the route is known", got)
	}
	span.SetAttributes(attribute.Int("http.response.status_code", 200))
	if _, ok := goroutineLabels(t)[LabelEndpoint]; ok {
		t.Error("an unrelated attribute set an endpoint")
	}
	trace.SpanFromContext(ctx).SetAttributes(route)
	got := goroutineLabels(t)
	if got[LabelEndpoint] != "/orders/{id}" || got[LabelSpanName] != "GET" {
		t.Errorf("after SetAttributes(http.route): %v", got)
	}
	span.SetName("GET /orders/{id}")
	got = goroutineLabels(t)
	if got[LabelEndpoint] != "/orders/{id}" || got[LabelSpanName] != "GET /orders/{id}" {
		t.Errorf("after SetName: %v", got)
	}
	span.End()
	wantLabels(t, "after End", goroutineLabels(t), map[string]string{})
	span.SetName("GET /late")
	span.SetAttributes(attribute.String("http.route", "/late"))
	wantLabels(t, "after renaming an ended span", goroutineLabels(t), map[string]string{})

	// SetName alone brings the route of a conventional name.
	_, span = tr.Start(context.Background(), "POST")
	span.SetName("POST /orders")
	if got := goroutineLabels(t)[LabelEndpoint]; got != "/orders" {
		t.Errorf("endpoint after SetName(POST /orders): %q", got)
	}
	span.End()
}

func TestEndpointOf(t *testing.T) {
	for name, want := range map[string]string{
		"GET /users/{id}":         "/users/{id}",
		"_OTHER /x":               "/x",
		"GET":                     "",
		"HTTP":                    "",
		"/users/42":               "", // could be a raw path
		"users/42":                "",
		"GET users":               "",
		"orders publish":          "",
		"process-batch":           "",
		"helloworld.Greeter/Hi":   "helloworld.Greeter/Hi",
		"pkg.v1.Orders/Get":       "pkg.v1.Orders/Get",
		"pkg.Orders/":             "",
		"pkg.Orders/Get/extra":    "",
		"SELECT orders.items/sum": "",
	} {
		if got := endpointOf(name); got != want {
			t.Errorf("endpointOf(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestLinkSpansEndThroughContextAndTwice(t *testing.T) {
	tr, _ := newLinked(t, sdktrace.AlwaysSample())
	ctx, _ := tr.Start(context.Background(), "GET /a")
	trace.SpanFromContext(ctx).End()
	wantLabels(t, "after End through the context", goroutineLabels(t), map[string]string{})

	later := pprof.WithLabels(context.Background(), pprof.Labels("phase", "after"))
	pprof.SetGoroutineLabels(later)
	trace.SpanFromContext(ctx).End()
	wantLabels(t, "after a second End", goroutineLabels(t), map[string]string{"phase": "after"})
}

func TestLinkSpansWithPprofDo(t *testing.T) {
	tr, _ := newLinked(t, sdktrace.AlwaysSample())
	ctx, span := tr.Start(context.Background(), "GET /a")
	defer span.End()
	id := span.SpanContext().SpanID().String()
	pprof.Do(ctx, pprof.Labels("step", "parse"), func(context.Context) {
		got := goroutineLabels(t)
		if got[labelSpanID] != id || got["step"] != "parse" {
			t.Errorf("inside pprof.Do: %v", got)
		}
	})
	if got := goroutineLabels(t); got[labelSpanID] != id || got["step"] != "" {
		t.Errorf("after pprof.Do: %v", got)
	}
}

func TestLinkSpansConcurrent(t *testing.T) {
	tr, rec := newLinked(t, sdktrace.AlwaysSample())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			app := pprof.WithLabels(context.Background(), pprof.Labels("worker", string(rune('a'+g))))
			for range 200 {
				ctx, span := tr.Start(app, "GET")
				span.SetAttributes(attribute.String("http.route", "/r"))
				span.SetName("GET /r")
				l := ctxLabels(ctx)
				if l[labelSpanID] != span.SpanContext().SpanID().String() || l["worker"] != string(rune('a'+g)) {
					t.Errorf("labels %v", l)
				}
				span.End()
			}
		}()
	}
	wg.Wait()
	if n := len(rec.Ended()); n != 8*200 {
		t.Errorf("%d spans ended", n)
	}
}

func TestLinkSpansIdempotent(t *testing.T) {
	if LinkSpans(nil) != nil {
		t.Error("LinkSpans(nil) is not nil")
	}
	sdk := sdktrace.NewTracerProvider()
	defer func() { _ = sdk.Shutdown(context.Background()) }()
	l := LinkSpans(sdk)
	if LinkSpans(l) != l {
		t.Error("linking twice wraps twice")
	}
}
