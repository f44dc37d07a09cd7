package tracing_test

import (
	"context"
	"log/slog"

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
