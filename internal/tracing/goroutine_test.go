package tracing

import (
	"context"
	"testing"
	"time"

	"github.com/observekit/observe/internal/wiring"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
)

func TestGoCarriesTraceContext(t *testing.T) {
	p, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	wiring.Tracing.Store(p)
	defer wiring.Tracing.Store(nil)
	defer p.Shutdown(context.Background())

	m, _ := baggage.NewMember("tenant", "acme")
	bag, _ := baggage.New(m)
	ctx, cancel := context.WithCancel(baggage.ContextWithBaggage(context.Background(), bag))
	ctx, parent := p.Tracer().Start(ctx, "request")

	var (
		gotSC        trace.SpanContext
		gotBag       string
		canceledSeen bool
	)
	started := make(chan struct{})
	done := Go(ctx, "background-work", func(ctx context.Context) {
		<-started
		gotSC = trace.SpanContextFromContext(ctx)
		gotBag = baggage.FromContext(ctx).Member("tenant").Value()
		canceledSeen = ctx.Err() != nil
	}, WithSpanAttributes(attribute.String("job", "reindex")))
	parent.End()
	cancel() // the request ends before the goroutine runs
	close(started)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("goroutine did not finish")
	}
	if gotSC.TraceID() != parent.SpanContext().TraceID() || gotSC.SpanID() == parent.SpanContext().SpanID() {
		t.Fatalf("goroutine span %v is not a new span in the parent's trace %v", gotSC, parent.SpanContext())
	}
	if gotBag != "acme" {
		t.Errorf("baggage not carried: %q", gotBag)
	}
	if canceledSeen {
		t.Error("the request's cancellation reached the goroutine")
	}
	spans := p.Store().Trace(parent.SpanContext().TraceID())
	if len(spans) != 2 {
		t.Fatalf("trace holds %d spans", len(spans))
	}
	for _, s := range spans {
		if s.Name() == "background-work" && s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("background span's parent %v", s.Parent())
		}
	}
}

func TestGoNewTraceLinksAndKeepCancel(t *testing.T) {
	p, _ := New(context.Background(), Config{})
	wiring.Tracing.Store(p)
	defer wiring.Tracing.Store(nil)
	defer p.Shutdown(context.Background())

	ctx, cancel := context.WithCancel(context.Background())
	ctx, parent := p.Tracer().Start(ctx, "request")
	cancel()
	var sc trace.SpanContext
	var err error
	<-Go(ctx, "batch", func(ctx context.Context) {
		sc = trace.SpanContextFromContext(ctx)
		err = ctx.Err()
	}, NewTrace(), KeepCancel())
	parent.End()
	if sc.TraceID() == parent.SpanContext().TraceID() {
		t.Fatal("NewTrace continued the parent's trace")
	}
	if err == nil {
		t.Error("KeepCancel lost the cancellation")
	}
	spans := p.Store().Trace(sc.TraceID())
	if len(spans) != 1 || len(spans[0].Links()) != 1 || spans[0].Links()[0].SpanContext.SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("new-trace span lacks its link to the parent: %v", spans)
	}
}

func TestGoWithoutNameOnlyCarriesContext(t *testing.T) {
	p, _ := New(context.Background(), Config{})
	defer p.Shutdown(context.Background())
	ctx, parent := p.Tracer().Start(context.Background(), "request")
	var sc trace.SpanContext
	<-Go(ctx, "", func(ctx context.Context) { sc = trace.SpanContextFromContext(ctx) })
	parent.End()
	if !sc.Equal(parent.SpanContext()) {
		t.Fatal("span context not carried")
	}
}
