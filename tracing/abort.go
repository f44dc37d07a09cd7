package tracing

import (
	"context"
	"sync"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// abortableExporter lets Shutdown cut in-flight and later exports short once
// its deadline has passed. The SDK's batch processor keeps draining (and an
// OTLP exporter keeps retrying) past the caller's deadline; without this a
// blackholed collector would leave goroutines running after Shutdown returned.
type abortableExporter struct {
	sdktrace.SpanExporter
	stop     context.Context
	abort    context.CancelFunc
	stopOnce sync.Once
}

func newAbortable(e sdktrace.SpanExporter) *abortableExporter {
	ctx, cancel := context.WithCancel(context.Background())
	return &abortableExporter{SpanExporter: e, stop: ctx, abort: cancel}
}

func (a *abortableExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := a.stop.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(a.stop, cancel)
	defer stop()
	return a.SpanExporter.ExportSpans(ctx, spans)
}

// Shutdown aborts pending exports if ctx is already done, then shuts the
// wrapped exporter down.
func (a *abortableExporter) Shutdown(ctx context.Context) error {
	if ctx.Err() != nil {
		a.abort()
	}
	return a.SpanExporter.Shutdown(ctx)
}

// shutdownBy runs shutdown and, if ctx ends first, aborts exports so the
// shutdown finishes promptly, then waits for it: nothing keeps running.
func shutdownBy(ctx context.Context, abort func(), shutdown func(context.Context) error) error {
	done := make(chan error, 1)
	go func() { done <- shutdown(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		abort()
		<-done
		return ctx.Err()
	}
}
