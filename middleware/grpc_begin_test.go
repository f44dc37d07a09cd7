package middleware

import (
	"context"
	"testing"

	"github.com/observekit/observe/internal/tracing"
	"github.com/observekit/observe/internal/wiring"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
)

// The server starts a call's span at stats.InHeader, from the metadata that
// event carries, and falls back to the context's metadata when a call's
// first event after TagRPC is another one (a gRPC that emits InHeader later,
// or not at all). Both continue the caller's trace and see its baggage.
func TestGRPCServerBeginsFromInHeaderOrContext(t *testing.T) {
	tp, err := tracing.New(context.Background(), tracing.Config{StoreSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	prop, err := tracing.NewPropagator([]string{"tracecontext", "baggage"})
	if err != nil {
		t.Fatal(err)
	}
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(prop)
	wiring.Tracing.Store(tp)
	t.Cleanup(func() {
		wiring.Tracing.Store(nil)
		otel.SetTextMapPropagator(prev)
		_ = tp.Shutdown(context.Background())
	})
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	md := metadata.Pairs("traceparent", "00-"+traceID+"-"+parentID+"-01", "x-observe-debug", "not-the-token")
	for _, viaInHeader := range []bool{true, false} {
		h := &grpcServerHandler{opts: buildOptions(nil)}
		ctx := metadata.NewIncomingContext(context.Background(), md)
		ctx = h.TagRPC(ctx, &stats.RPCTagInfo{FullMethodName: "/pkg.Svc/Method"})
		if viaInHeader {
			h.HandleRPC(ctx, &stats.InHeader{FullMethod: "/pkg.Svc/Method", Header: md.Copy()})
		}
		h.HandleRPC(ctx, &stats.Begin{})
		span := trace.SpanFromContext(ctx)
		if !span.IsRecording() {
			t.Fatalf("viaInHeader=%v: no recording span in the call's context", viaInHeader)
		}
		ro := span.(interface{ Parent() trace.SpanContext })
		if got := span.SpanContext().TraceID().String(); got != traceID {
			t.Errorf("viaInHeader=%v: trace %s, want the caller's %s", viaInHeader, got, traceID)
		}
		if got := ro.Parent().SpanID().String(); got != parentID {
			t.Errorf("viaInHeader=%v: parent %s, want %s", viaInHeader, got, parentID)
		}
		if v := metadata.ValueFromIncomingContext(ctx, "x-observe-debug"); v != nil {
			t.Errorf("viaInHeader=%v: the handler sees x-observe-debug: %q", viaInHeader, v)
		}
		// A second InHeader (or Begin) does not start a second span.
		h.HandleRPC(ctx, &stats.InHeader{Header: md.Copy()})
		if trace.SpanFromContext(ctx) != span {
			t.Errorf("viaInHeader=%v: the span changed on a second event", viaInHeader)
		}
		h.HandleRPC(ctx, &stats.End{})
		if span.IsRecording() {
			t.Errorf("viaInHeader=%v: the span did not end with stats.End", viaInHeader)
		}
	}
}

func TestTargetAddr(t *testing.T) {
	for _, c := range []struct {
		target string
		host   string
		port   int
	}{
		{"dns:///orders.svc:8081", "orders.svc", 8081},
		{"dns://8.8.8.8/example.com:443", "example.com", 443},
		{"dns:///example.com", "example.com", 0},
		{"passthrough:///127.0.0.1:7777", "127.0.0.1", 7777},
		{"passthrough:///bufnet", "bufnet", 0},
		{"dns:///[::1]:50051", "::1", 50051},
		{"unix:///run/app.sock", "/run/app.sock", 0},
		{"unix:relative.sock", "relative.sock", 0},
		{"unix-abstract:name", "name", 0},
		{"127.0.0.1:9000", "127.0.0.1", 9000},
		{"", "", 0},
	} {
		host, port := targetAddr(c.target)
		if host != c.host || port != c.port {
			t.Errorf("targetAddr(%q) = %q, %d; want %q, %d", c.target, host, port, c.host, c.port)
		}
	}
}

func FuzzTargetAddr(f *testing.F) {
	for _, s := range []string{"dns:///orders:8081", "unix:///a.sock", "passthrough:///[::1]:1", "x:%zz", "::::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		_, port := targetAddr(target)
		if port < 0 || port > 65535 {
			t.Fatalf("targetAddr(%q): port %d", target, port)
		}
	})
}
