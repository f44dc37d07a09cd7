package tracing

import (
	"context"
	"testing"

	"github.com/observekit/observe/redact"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// BenchmarkRedactGRPCSpan is the export-time redaction of a gRPC server
// span as the middleware writes it, with the default policy.
func BenchmarkRedactGRPCSpan(b *testing.B) {
	var c captureSpan
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(&c))
	_, s := tp.Tracer("b").Start(context.Background(), "pkg.Svc/Method", trace.WithSpanKind(trace.SpanKindServer))
	s.SetAttributes(
		attribute.String("rpc.system.name", "grpc"),
		attribute.String("rpc.method", "pkg.Svc/Method"),
		attribute.String("client.address", "127.0.0.1"),
		attribute.Int("client.port", 50412),
		attribute.String("rpc.response.status_code", "OK"),
	)
	s.End()
	span := c.span
	p := redact.Default()
	b.ReportAllocs()
	for b.Loop() {
		if redactSpan(p, span) != span {
			b.Fatal("a clean span was copied")
		}
	}
}

// captureSpan keeps the last ended span as the SDK hands it to processors.
type captureSpan struct{ span sdktrace.ReadOnlySpan }

func (c *captureSpan) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (c *captureSpan) OnEnd(s sdktrace.ReadOnlySpan)                   { c.span = s }
func (c *captureSpan) Shutdown(context.Context) error                  { return nil }
func (c *captureSpan) ForceFlush(context.Context) error                { return nil }
