package tracing_test

import (
	"context"
	"fmt"
	"time"

	"github.com/observekit/observe/internal/tracing"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Local tail sampling on a tracer provider of your own: 1% of normal
// traces, every error, and every trace slower than its route's p99 or than
// 2s. (observe.Init does this for OTEL_TRACES_SAMPLER=observe_tail, or
// observe.WithTailSampling.)
func ExampleNewTailSampler() {
	exp := tracetest.NewInMemoryExporter()
	bsp := sdktrace.NewBatchSpanProcessor(exp)
	tail := tracing.NewTailSampler(tracing.TailConfig{
		Baseline:        0.01,
		LatencyQuantile: 0.99,
		Latency:         2 * time.Second,
	}, bsp) // kept spans of tentative traces go to bsp
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(tail.Sampler()),
		sdktrace.WithSpanProcessor(bsp), // sampled spans reach it directly
		sdktrace.WithSpanProcessor(tail),
	)
	defer func() { _ = tp.Shutdown(context.Background()) }()

	ctx, root := tp.Tracer("example").Start(context.Background(), "GET /orders/{id}")
	_, db := tp.Tracer("example").Start(ctx, "SELECT orders")
	db.End()
	root.SetStatus(codes.Error, "upstream timeout")
	root.End()

	_ = tp.ForceFlush(context.Background())
	fmt.Println("kept:", tail.Kept(root.SpanContext()), "spans exported:", len(exp.GetSpans()))
	// Output: kept: true spans exported: 2
}
