package middleware

import (
	"context"
	"fmt"
	"testing"

	"github.com/observekit/observe/internal/tracing"
	"github.com/observekit/observe/internal/wiring"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
)

// The server starts a call's span at stats.InHeader, from the metadata that
// event carries, and falls back to the context's metadata when a call's
// first event after TagRPC is another one (a gRPC that emits InHeader later,
// or not at all). Both continue the caller's trace, see its baggage and
// hide x-observe-debug from the handler.
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
	md := metadata.Pairs("traceparent", "00-"+traceID+"-"+parentID+"-01", "x-observe-debug", "not-the-token", "baggage", "tenant=acme")
	for _, viaInHeader := range []bool{true, false} {
		h := &grpcServerHandler{opts: buildOptions(nil)}
		// Via InHeader, only the event carries the headers, so a begin
		// that read the context's metadata instead would find none.
		inCtx := md
		if viaInHeader {
			inCtx = metadata.Pairs("x-observe-debug", "not-the-token")
		}
		ctx := metadata.NewIncomingContext(context.Background(), inCtx)
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
		if got := baggage.FromContext(ctx).Member("tenant").Value(); got != "acme" {
			t.Errorf("viaInHeader=%v: baggage tenant = %q, want acme", viaInHeader, got)
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

// A client span's server address comes from the connection's target, as
// grpc-go writes it (ClientConn.CanonicalTarget), and for a unix socket as
// the program gave it.
func TestTargetAddr(t *testing.T) {
	for _, c := range []struct {
		target string
		host   string
		port   int
	}{
		{"orders.svc:8081", "orders.svc", 8081},
		{"dns:///orders.svc:8081", "orders.svc", 8081},
		{"dns://8.8.8.8/example.com:443", "example.com", 443},
		{"dns:///example.com", "example.com", 0},
		{"passthrough:///127.0.0.1:7777", "127.0.0.1", 7777},
		{"passthrough:///bufnet", "bufnet", 0},
		{"[::1]:50051", "::1", 50051},
		{"dns:///[fe80::1%25eth0]:50051", "fe80::1%eth0", 50051},
		{"unix:///run/app.sock", "/run/app.sock", 0},
		{"unix:relative.sock", "relative.sock", 0},
		{"unix-abstract:name", "name", 0},
	} {
		cc, err := grpc.NewClient(c.target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatalf("%s: %v", c.target, err)
		}
		var cache targetCache
		e := cache.get(cc)
		cc.Close()
		if e.host != c.host || e.port != c.port {
			t.Errorf("%s (canonical %s): %q, %d; want %q, %d", c.target, cc.CanonicalTarget(), e.host, e.port, c.host, c.port)
		}
	}
}

// The cache keeps the last few connections: calls alternating between
// connections that share one set of options parse each target once.
func TestTargetCacheKeepsRecentConnections(t *testing.T) {
	var conns []*grpc.ClientConn
	for i := range targetCacheSize + 1 {
		cc, err := grpc.NewClient(fmt.Sprintf("host%d:%d", i, 1000+i), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		conns = append(conns, cc)
	}
	var cache targetCache
	first := cache.get(conns[0])
	if cache.get(conns[1]); cache.get(conns[0]) != first {
		t.Error("a recent connection's entry was parsed again")
	}
	for _, cc := range conns[1:] {
		cache.get(cc)
	}
	if len(*cache.recent.Load()) != targetCacheSize {
		t.Errorf("cache holds %d entries, want at most %d", len(*cache.recent.Load()), targetCacheSize)
	}
	if e := cache.get(conns[0]); e == first || e.host != "host0" || e.port != 1000 {
		t.Errorf("the oldest connection: %+v (first %p)", e, first)
	}
}

func FuzzTargetAddr(f *testing.F) {
	for _, s := range []string{"dns:///orders:8081", "unix:///a.sock", "passthrough:///[::1]:1", "dns:///[::1]:-1", "dns:///[::1]:70000", "x:%zz", "::::"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, canonical, target string) {
		_, port := targetAddr(canonical, target)
		if port < 0 || port > 65535 {
			t.Fatalf("targetAddr(%q, %q): port %d", canonical, target, port)
		}
	})
}

func TestSplitHostPort(t *testing.T) {
	for _, c := range []struct {
		in   string
		host string
		port int
	}{
		{"example.com:8080", "example.com", 8080},
		{"example.com", "example.com", 0},
		{"[::1]:443", "::1", 443},
		{"[::1]", "::1", 0},
		{"::1", "::1", 0},
		{"[::1]:70000", "::1", 0},
		{"[::1]:-1", "::1", 0},
		{"host:99999", "host", 0},
		{"", "", 0},
	} {
		if host, port := splitHostPort(c.in); host != c.host || port != c.port {
			t.Errorf("splitHostPort(%q) = %q, %d; want %q, %d", c.in, host, port, c.host, c.port)
		}
	}
}
