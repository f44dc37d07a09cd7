package tracing

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// GoOption configures Go.
type GoOption func(*goConfig)

type goConfig struct {
	newTrace   bool
	keepCancel bool
	attrs      []attribute.KeyValue
}

// NewTrace makes the goroutine's span the root of a new trace, linked to the
// caller's span, instead of its child: right for long background work that
// would otherwise stretch the request's trace.
func NewTrace() GoOption { return func(c *goConfig) { c.newTrace = true } }

// KeepCancel keeps ctx's cancellation and deadline; by default the goroutine
// gets neither, because work handed off to a goroutine usually outlives the
// request that started it.
func KeepCancel() GoOption { return func(c *goConfig) { c.keepCancel = true } }

// WithSpanAttributes adds attributes to the goroutine's span.
func WithSpanAttributes(attrs ...attribute.KeyValue) GoOption {
	return func(c *goConfig) { c.attrs = append(c.attrs, attrs...) }
}

// Go runs fn in a new goroutine with the trace context of ctx carried over:
// fn's context holds ctx's values (span, baggage, anything else) but, unless
// KeepCancel is given, not its cancellation. When name is not empty, fn runs
// inside a span of that name, a child of ctx's span (or, with NewTrace, the
// root of a new trace linked to it), so logs written with fn's context carry
// its trace_id and span_id.
//
// The returned channel is closed when fn has returned: the caller owns the
// goroutine and can wait for it. A panic in fn is recorded on the span (error
// status, exception event), the span is ended, and the panic continues.
func Go(ctx context.Context, name string, fn func(ctx context.Context), opts ...GoOption) <-chan struct{} {
	var c goConfig
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if !c.keepCancel {
		ctx = context.WithoutCancel(ctx)
	}
	done := make(chan struct{})
	if name == "" {
		go func() {
			defer close(done)
			fn(ctx)
		}()
		return done
	}
	sopts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}
	if len(c.attrs) > 0 {
		sopts = append(sopts, trace.WithAttributes(c.attrs...))
	}
	if c.newTrace {
		sopts = append(sopts, trace.WithNewRoot())
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			sopts = append(sopts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	// Start the span before the goroutine runs, so its start time is when the
	// work was handed off and a parent ending right after still sees a child.
	sctx, span := tracer().Start(ctx, name, sopts...)
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				err, ok := p.(error)
				if !ok {
					err = fmt.Errorf("panic: %v", p)
				}
				span.RecordError(err, trace.WithStackTrace(true))
				span.SetStatus(codes.Error, err.Error())
				span.SetAttributes(attribute.String("error.type", "panic"))
				span.End()
				panic(p)
			}
			span.End()
		}()
		fn(sctx)
	}()
	return done
}

func tracer() trace.Tracer {
	if p := current(); p != nil {
		return p.tracer
	}
	return otel.GetTracerProvider().Tracer(InstrumentationName)
}
