// Package tracing holds the tracing calls a service owner makes beyond the
// plain OpenTelemetry API: Go, which hands work to a goroutine without
// losing the trace, and TailConfig, the local tail sampling given to
// observe.WithTailSampling.
//
// observe.Init installs the tracer provider and the propagators
// (otel.GetTracerProvider, otel.GetTextMapPropagator), so spans are created
// with otel.Tracer(…) as usual; the implementation lives in an internal
// package.
package tracing

import (
	"context"

	itracing "github.com/observekit/observe/internal/tracing"
	"go.opentelemetry.io/otel/attribute"
)

// InstrumentationName is the instrumentation scope of the spans observe
// creates (the middleware's server and client spans, Go's spans).
const InstrumentationName = "github.com/observekit/observe"

// TailConfig configures local tail sampling (observe.WithTailSampling, or
// OTEL_TRACES_SAMPLER=observe_tail with the OBSERVE_TAIL_* variables). The
// zero value keeps the traces that end in error, with the default memory
// caps. Its fields are documented in the README's "Local tail sampling".
type TailConfig = itracing.TailConfig

// GoOption configures Go.
type GoOption = itracing.GoOption

// Go runs fn in a new goroutine with the trace context of ctx carried over:
// fn's context holds ctx's values (span, baggage, anything else) but, unless
// KeepCancel is given, not its cancellation. When name is not empty, fn runs
// inside a span of that name, a child of ctx's span (or, with NewTrace, the
// root of a new trace linked to it), so logs written with fn's context carry
// its trace_id and span_id.
//
// The returned channel is closed when fn has returned: the caller owns the
// goroutine and can wait for it. A panic in fn is recorded on the span
// (error status, exception event), the span is ended, and the panic
// continues.
func Go(ctx context.Context, name string, fn func(ctx context.Context), opts ...GoOption) <-chan struct{} {
	return itracing.Go(ctx, name, fn, opts...)
}

// KeepCancel keeps ctx's cancellation and deadline for the goroutine; by
// default it gets neither, because work handed off to a goroutine usually
// outlives the request that started it.
func KeepCancel() GoOption { return itracing.KeepCancel() }

// NewTrace makes the goroutine's span the root of a new trace, linked to the
// caller's span, instead of its child: right for long background work that
// would otherwise stretch the request's trace.
func NewTrace() GoOption { return itracing.NewTrace() }

// WithSpanAttributes adds attributes to the goroutine's span.
func WithSpanAttributes(attrs ...attribute.KeyValue) GoOption {
	return itracing.WithSpanAttributes(attrs...)
}
