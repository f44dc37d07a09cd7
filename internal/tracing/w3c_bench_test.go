package tracing

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/propagation"
)

// Extract of a request carrying a traceparent and a tracestate, by
// observe's propagator and by OTel's, for the per-request cost.
func BenchmarkTraceContextExtract(b *testing.B) {
	h := propagation.HeaderCarrier(http.Header{
		"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"Tracestate":  {"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"},
	})
	noState := propagation.HeaderCarrier(http.Header{
		"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	})
	for _, c := range []struct {
		name string
		p    propagation.TextMapPropagator
		h    propagation.HeaderCarrier
	}{
		{"observe", traceContext{}, h},
		{"otel", propagation.TraceContext{}, h},
		{"observe/traceparent-only", traceContext{}, noState},
		{"otel/traceparent-only", propagation.TraceContext{}, noState},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				_ = c.p.Extract(ctx, c.h)
			}
		})
	}
}
