package middleware_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// A stream the caller abandons by canceling its context ends its client
// span and records its metric with CANCELLED, though the caller never reads
// the stream to its end.
func TestGRPCClientStreamCanceledEnds(t *testing.T) {
	env := setup(t)
	conn := grpcPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	bidi, err := testpb.NewTestServiceClient(conn).FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bidi.Send(&testpb.StreamingOutputCallRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := bidi.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	cs := env.span(t, trace.SpanKindClient)
	if cs.Name() != "grpc.testing.TestService/FullDuplexCall" {
		t.Errorf("client span %q", cs.Name())
	}
	wantAttr(t, cs, "rpc.response.status_code", "CANCELLED")
	wantAttr(t, cs, "server.address", "127.0.0.1")
	if cs.Status().Code != codes.Error {
		t.Errorf("client span status %v", cs.Status())
	}
	want := "rpc_method=grpc.testing.TestService/FullDuplexCall,rpc_response_status_code=CANCELLED,rpc_system_name=grpc, count=1"
	if got := env.metricWith(t, "rpc_client_call_duration_seconds", want); !strings.Contains(got, want) {
		t.Errorf("client metric: %s", got)
	}
}

// Calls that never reach a server (nothing listens) are recorded on the
// client, unary and streaming alike, with the status the program gets, and
// the server they were for (the connection's target).
func TestGRPCClientUnreachableServer(t *testing.T) {
	env := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // refused from now on
	conn, err := grpc.NewClient(addr, append(middleware.GRPCClient(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}); status.Code(err) != grpccodes.Unavailable {
		t.Fatalf("unary: %v", err)
	}
	if _, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{}); status.Code(err) != grpccodes.Unavailable {
		t.Fatalf("stream: %v", err)
	}
	spans := env.spans(t, 2)
	for _, name := range []string{"grpc.testing.TestService/UnaryCall", "grpc.testing.TestService/StreamingOutputCall"} {
		s := spanByKind(spans, trace.SpanKindClient, name)
		if s == nil {
			t.Fatalf("no client span %s: %v", name, names(spans))
		}
		wantAttr(t, s, "rpc.response.status_code", "UNAVAILABLE")
		wantAttr(t, s, "error.type", "UNAVAILABLE")
		wantAttr(t, s, "server.address", "127.0.0.1")
		wantAttr(t, s, "server.port", ln.Addr().(*net.TCPAddr).Port)
	}
	want := "rpc_method=grpc.testing.TestService/StreamingOutputCall,rpc_response_status_code=UNAVAILABLE,rpc_system_name=grpc, count=1"
	if got := env.metricWith(t, "rpc_client_call_duration_seconds", want); !strings.Contains(got, want) {
		t.Errorf("client metric: %s", got)
	}
}

// The client's interceptors run before the program's own chained ones, so
// those see the client span in their context (a log line there carries its
// trace_id), and the trace context reaches the server all the same.
func TestGRPCClientInterceptorsSeeTheSpan(t *testing.T) {
	env := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(middleware.GRPCServer()...)
	testpb.RegisterTestServiceServer(srv, testService{})
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	var seen trace.SpanContext
	mine := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		seen = trace.SpanContextFromContext(ctx)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	conn, err := grpc.NewClient(ln.Addr().String(), append(middleware.GRPCClient(),
		grpc.WithChainUnaryInterceptor(mine), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := testpb.NewTestServiceClient(conn).UnaryCall(context.Background(), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	spans := env.spans(t, 2)
	cs := spanByKind(spans, trace.SpanKindClient, "")
	ss := spanByKind(spans, trace.SpanKindServer, "")
	if cs == nil || ss == nil {
		t.Fatalf("spans: %v", names(spans))
	}
	if seen.SpanID() != cs.SpanContext().SpanID() {
		t.Errorf("the program's interceptor saw span %s, want the client span %s", seen.SpanID(), cs.SpanContext().SpanID())
	}
	if ss.Parent().SpanID() != cs.SpanContext().SpanID() {
		t.Error("server span is not the client span's child")
	}
}
