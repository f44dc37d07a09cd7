package tracing_test

import (
	"context"
	"log"
	"log/slog"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/tracing"
)

// Handing work to a goroutine: it runs in a span of its own, in the
// request's trace, after the request has returned.
func ExampleGo() {
	handle := func(ctx context.Context) {
		tracing.Go(ctx, "email.send", func(ctx context.Context) {
			slog.InfoContext(ctx, "sending receipt") // carries trace_id and span_id
		})
	}
	handle(context.Background())
}

// Local tail sampling: every error trace, every trace slower than its
// route's p99 or than 2s, and 1% of the rest, decided in process.
func ExampleTailConfig() {
	obs, err := observe.Init(context.Background(), observe.WithTailSampling(tracing.TailConfig{
		Baseline:        0.01,
		LatencyQuantile: 0.99,
		Latency:         2 * time.Second,
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer obs.Shutdown(context.Background())
}
