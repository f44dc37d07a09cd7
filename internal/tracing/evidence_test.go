package tracing_test

import (
	"context"
	"testing"

	"github.com/observekit/observe/internal/evidence"
	"github.com/observekit/observe/internal/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// While an anomaly lists a route, its new requests are sampled whatever the
// sampler says (head sampling at ratio 0 here, and tail sampling keeping
// nothing), with their children; other routes and client spans are not.
func TestEvidenceForcesSampling(t *testing.T) {
	never, err := tracing.NewSampler("parentbased_traceidratio", "0")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  tracing.Config
	}{
		{"head", tracing.Config{Sampler: never}},
		{"tail", tracing.Config{Tail: &tracing.TailConfig{}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &tailRecorder{}
			c.cfg.Exporter = "custom"
			c.cfg.SpanExporter = rec
			p, err := tracing.New(context.Background(), c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Shutdown(context.Background())
			tr := p.Tracer()
			request := func(name string) trace.SpanContext {
				ctx, root := tr.Start(context.Background(), name, trace.WithSpanKind(trace.SpanKindServer))
				_, child := tr.Start(ctx, "db query")
				child.End()
				root.End()
				return root.SpanContext()
			}
			if sc := request("GET /slow"); sc.IsSampled() {
				t.Fatal("sampled before any anomaly")
			}
			evidence.Set(evidence.List{Traces: true, Logs: true, Routes: []evidence.Route{{Kind: "http_server", Route: "/slow"}, {Kind: "rpc_server", Route: "pkg.Svc/Get"}}})
			defer evidence.Set(evidence.List{})
			kept := []trace.SpanContext{request("GET /slow"), request("POST /slow"), request("pkg.Svc/Get")}
			other := []trace.SpanContext{request("GET /fast"), request("GET")}
			_, cl := tr.Start(context.Background(), "pkg.Svc/Get", trace.WithSpanKind(trace.SpanKindClient))
			cl.End()
			other = append(other, cl.SpanContext())
			for _, sc := range kept {
				if !sc.IsSampled() {
					t.Errorf("trace %s of a listed route not sampled", sc.TraceID())
				}
			}
			for _, sc := range other {
				if sc.IsSampled() {
					t.Errorf("trace %s of another route sampled", sc.TraceID())
				}
			}
			if err := p.ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := rec.byTrace()
			for _, sc := range kept {
				if n := len(got[sc.TraceID()]); n != 2 {
					t.Errorf("trace %s: %d spans exported, want the root and its child", sc.TraceID(), n)
				}
			}
			if len(got) != len(kept) {
				t.Errorf("%d traces exported, want %d", len(got), len(kept))
			}
			// Logs only: not sampled, remembered for the log sampler.
			evidence.Set(evidence.List{Logs: true, Routes: []evidence.Route{{Kind: "http_server", Route: "/slow"}}})
			sc := request("GET /slow")
			if sc.IsSampled() || !evidence.LogsKept(sc.TraceID()) {
				t.Errorf("logs-only: sampled %v, logs kept %v", sc.IsSampled(), evidence.LogsKept(sc.TraceID()))
			}
			evidence.Set(evidence.List{})
			if evidence.LogsKept(sc.TraceID()) {
				t.Error("logs kept with nothing listed")
			}
		})
	}
}

// The wrapper keeps a sampler made by NewSampler attribute-blind, so the
// HTTP middleware's cheaper path stays on.
func TestEvidenceKeepsAttributeBlindness(t *testing.T) {
	s, _ := tracing.NewSampler("parentbased_always_on", "")
	p, err := tracing.New(context.Background(), tracing.Config{Sampler: s})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	if p.StartAttributesObserved() {
		t.Fatal("start attributes observed with an attribute-blind sampler")
	}
	var _ sdktrace.Sampler = s
}
