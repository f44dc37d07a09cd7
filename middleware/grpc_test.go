package middleware_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// testService is grpc's interop TestService: UnaryCall answers with the
// status the request asks for, or panics when asked "panic".
type testService struct {
	testpb.UnimplementedTestServiceServer
}

func (testService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if rs := req.GetResponseStatus(); rs != nil {
		if rs.GetMessage() == "panic" {
			panic("handler blew up")
		}
		return nil, status.Error(grpccodes.Code(rs.GetCode()), rs.GetMessage())
	}
	return &testpb.SimpleResponse{Username: "ok"}, nil
}

func (testService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	for range req.GetResponseParameters() {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
			return err
		}
	}
	return nil
}

func (testService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		_, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
			return err
		}
	}
}

// grpcPair starts an instrumented server and returns an instrumented
// client connection to it.
func grpcPair(t *testing.T, extra ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(middleware.GRPCServer(), extra...)...)
	testpb.RegisterTestServiceServer(srv, testService{})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), append(middleware.GRPCClient(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		<-done
	})
	return conn
}

func spanByKind(spans []sdktrace.ReadOnlySpan, kind trace.SpanKind, name string) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if s.SpanKind() == kind && (name == "" || s.Name() == name) {
			return s
		}
	}
	return nil
}

func TestGRPCUnarySpansAndMetrics(t *testing.T) {
	env := setup(t)
	conn := grpcPair(t)
	client := testpb.NewTestServiceClient(conn)
	ctx, parent := env.tp.Tracer().Start(context.Background(), "caller")
	if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	spans := env.spans(t, 3)
	const method = "grpc.testing.TestService/UnaryCall"
	cs := spanByKind(spans, trace.SpanKindClient, method)
	ss := spanByKind(spans, trace.SpanKindServer, method)
	if cs == nil || ss == nil {
		t.Fatalf("spans: %v", names(spans))
	}
	if cs.Parent().SpanID() != parent.SpanContext().SpanID() || ss.Parent().SpanID() != cs.SpanContext().SpanID() ||
		ss.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Error("client and server spans are not one parented trace")
	}
	for _, s := range []sdktrace.ReadOnlySpan{cs, ss} {
		wantAttr(t, s, "rpc.system.name", "grpc")
		wantAttr(t, s, "rpc.method", method)
		wantAttr(t, s, "rpc.response.status_code", "OK")
		if s.Status().Code != codes.Unset {
			t.Errorf("%v status %v", s.SpanKind(), s.Status())
		}
	}
	wantAttr(t, cs, "server.address", "127.0.0.1")
	wantAttr(t, ss, "client.address", "127.0.0.1")
	for _, name := range []string{"rpc_server_call_duration_seconds", "rpc_client_call_duration_seconds"} {
		want := "rpc_method=" + method + ",rpc_response_status_code=OK,rpc_system_name=grpc, count=1"
		if got := env.metricWith(t, name, want); !strings.Contains(got, want) {
			t.Errorf("%s: %s", name, got)
		}
	}
}

func TestGRPCErrorCodes(t *testing.T) {
	env := setup(t)
	client := testpb.NewTestServiceClient(grpcPair(t))
	for _, c := range []grpccodes.Code{grpccodes.NotFound, grpccodes.Internal} {
		_, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(c), Message: "nope"}})
		if status.Code(err) != c {
			t.Fatalf("got %v, want %v", err, c)
		}
	}
	spans := env.spans(t, 4)
	for _, s := range spans {
		code := attrs(s)["rpc.response.status_code"].AsString()
		isErr := s.Status().Code == codes.Error
		switch {
		case s.SpanKind() == trace.SpanKindClient && !isErr:
			t.Errorf("client %s not in error", code)
		case s.SpanKind() == trace.SpanKindServer && code == "NOT_FOUND" && isErr:
			t.Error("server NOT_FOUND is the client's error, not the server's")
		case s.SpanKind() == trace.SpanKindServer && code == "INTERNAL" && !isErr:
			t.Error("server INTERNAL not in error")
		}
		if isErr {
			wantAttr(t, s, "error.type", code)
		}
	}
}

func TestGRPCStreaming(t *testing.T) {
	env := setup(t)
	client := testpb.NewTestServiceClient(grpcPair(t))
	ss, err := client.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{}, {}, {}},
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := ss.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	bidi, err := client.FullDuplexCall(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := bidi.Send(&testpb.StreamingOutputCallRequest{}); err != nil {
			t.Fatal(err)
		}
		if _, err := bidi.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	_ = bidi.CloseSend()
	if _, err := bidi.Recv(); err != io.EOF {
		t.Fatalf("bidi end: %v", err)
	}
	spans := env.spans(t, 4)
	for _, name := range []string{"grpc.testing.TestService/StreamingOutputCall", "grpc.testing.TestService/FullDuplexCall"} {
		for _, kind := range []trace.SpanKind{trace.SpanKindClient, trace.SpanKindServer} {
			s := spanByKind(spans, kind, name)
			if s == nil {
				t.Fatalf("no %v span %s: %v", kind, name, names(spans))
			}
			wantAttr(t, s, "rpc.response.status_code", "OK")
		}
	}
}

func TestGRPCUnknownMethodSpanEnds(t *testing.T) {
	env := setup(t)
	conn := grpcPair(t)
	for _, m := range []string{"/grpc.testing.TestService/NoSuchMethod", "/no.such.Service/Method", "/garbage"} {
		err := conn.Invoke(context.Background(), m, &testpb.Empty{}, &testpb.Empty{})
		if status.Code(err) != grpccodes.Unimplemented {
			t.Fatalf("%s: %v", m, err)
		}
	}
	waitFor(t, func() bool {
		n := 0
		for _, s := range env.tp.Store().Spans() {
			if s.SpanKind() == trace.SpanKindServer {
				n++
			}
		}
		return n == 2 // grpc rejects the malformed "/garbage" before any stats event
	})
	for _, s := range env.tp.Store().Spans() {
		if s.SpanKind() != trace.SpanKindServer {
			continue
		}
		if s.Name() != "grpc" {
			t.Errorf("unknown method's span name %q (must not be the client's string)", s.Name())
		}
		wantAttr(t, s, "rpc.method", "_OTHER")
		wantAttr(t, s, "rpc.response.status_code", "UNIMPLEMENTED")
		if _, ok := attrs(s)["rpc.method_original"]; !ok {
			t.Error("rpc.method_original missing")
		}
	}
	got := env.metricWith(t, "rpc_server_call_duration_seconds", "rpc_method=_OTHER,rpc_response_status_code=UNIMPLEMENTED,rpc_system_name=grpc, count=2")
	if !strings.Contains(got, "rpc_method=_OTHER,rpc_response_status_code=UNIMPLEMENTED,rpc_system_name=grpc, count=2") || strings.Contains(got, "NoSuchMethod") {
		t.Errorf("server metric: %s", got)
	}
}

func TestGRPCUnknownServiceHandler(t *testing.T) {
	env := setup(t)
	conn := grpcPair(t, grpc.UnknownServiceHandler(func(srv any, stream grpc.ServerStream) error {
		return status.Error(grpccodes.NotFound, "proxied nowhere")
	}))
	if err := conn.Invoke(context.Background(), "/some.Proxy/Anything", &testpb.Empty{}, &testpb.Empty{}); status.Code(err) != grpccodes.NotFound {
		t.Fatalf("got %v", err)
	}
	// A registered method still keeps its name.
	if _, err := testpb.NewTestServiceClient(conn).UnaryCall(context.Background(), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	spans := env.spans(t, 4)
	if s := spanByKind(spans, trace.SpanKindServer, "grpc"); s == nil {
		t.Fatalf("no _OTHER server span: %v", names(spans))
	} else {
		wantAttr(t, s, "rpc.method", "_OTHER")
		wantAttr(t, s, "rpc.method_original", "some.Proxy/Anything")
		wantAttr(t, s, "rpc.response.status_code", "NOT_FOUND")
	}
	if spanByKind(spans, trace.SpanKindServer, "grpc.testing.TestService/UnaryCall") == nil {
		t.Errorf("registered method renamed: %v", names(spans))
	}
}

func TestGRPCRegisteredButUnimplementedKeepsName(t *testing.T) {
	env := setup(t)
	_, err := testpb.NewTestServiceClient(grpcPair(t)).EmptyCall(context.Background(), &testpb.Empty{})
	if status.Code(err) != grpccodes.Unimplemented {
		t.Fatal(err)
	}
	s := env.span(t, trace.SpanKindServer)
	if s.Name() != "grpc.testing.TestService/EmptyCall" {
		t.Errorf("span name %q", s.Name())
	}
}

func TestGRPCPanicRecovered(t *testing.T) {
	env := setup(t)
	_, err := testpb.NewTestServiceClient(grpcPair(t)).UnaryCall(context.Background(),
		&testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Message: "panic"}})
	if status.Code(err) != grpccodes.Internal || strings.Contains(err.Error(), "blew up") {
		t.Fatalf("client got %v, want INTERNAL without the panic value", err)
	}
	spans := env.spans(t, 2)
	ss := spanByKind(spans, trace.SpanKindServer, "")
	if ss.Status().Code != codes.Error {
		t.Errorf("server span status %v", ss.Status())
	}
	wantAttr(t, ss, "rpc.response.status_code", "INTERNAL")
	var stack string
	for _, ev := range ss.Events() {
		if ev.Name == "exception" {
			for _, kv := range ev.Attributes {
				if kv.Key == "exception.stacktrace" {
					stack = kv.Value.AsString()
				}
			}
		}
	}
	if !strings.Contains(stack, "testService.UnaryCall") {
		t.Errorf("exception event lacks the panic's stack: %.200q", stack)
	}
	rec, ok := env.logs.find("panic in gRPC handler")
	if !ok {
		t.Fatal("no ERROR log for the panic")
	}
	if rec.sc.TraceID() != ss.SpanContext().TraceID() || !strings.Contains(rec.attrs["stack"], "testService.UnaryCall") {
		t.Errorf("panic log: trace %s, stack %.100q", rec.sc.TraceID(), rec.attrs["stack"])
	}
	if got := env.metricWith(t, "rpc_server_call_duration_seconds", "rpc_response_status_code=INTERNAL"); !strings.Contains(got, "rpc_response_status_code=INTERNAL") {
		t.Errorf("metric: %s", got)
	}
}

func TestGRPCServerContinuesIncomingMetadata(t *testing.T) {
	env := setup(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := grpc.NewServer(middleware.GRPCServer()...)
	testpb.RegisterTestServiceServer(srv, testService{})
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	// An uninstrumented client sending a traceparent by hand.
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", incomingTP)
	if _, err := testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	s := env.span(t, trace.SpanKindServer)
	if s.SpanContext().TraceID().String() != incomingTraceID || s.Parent().SpanID().String() != incomingSpanID {
		t.Errorf("incoming traceparent not continued: %s %s", s.SpanContext().TraceID(), s.Parent().SpanID())
	}
}

func TestGRPCClientDeadline(t *testing.T) {
	env := setup(t)
	conn := grpcPair(t, grpc.UnknownServiceHandler(func(srv any, stream grpc.ServerStream) error {
		<-stream.Context().Done()
		return stream.Context().Err()
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := conn.Invoke(ctx, "/slow.Service/Wait", &testpb.Empty{}, &testpb.Empty{})
	if status.Code(err) != grpccodes.DeadlineExceeded {
		t.Fatalf("got %v", err)
	}
	spans := env.spans(t, 2)
	cs := spanByKind(spans, trace.SpanKindClient, "")
	wantAttr(t, cs, "rpc.response.status_code", "DEADLINE_EXCEEDED")
	if cs.Status().Code != codes.Error {
		t.Error("client span not in error")
	}
	if spanByKind(spans, trace.SpanKindServer, "") == nil {
		t.Error("server span did not end")
	}
}

func TestGRPCStreamPanicRecovered(t *testing.T) {
	env := setup(t)
	conn := grpcPair(t, grpc.UnknownServiceHandler(func(srv any, stream grpc.ServerStream) error {
		panic("stream handler blew up")
	}))
	err := conn.Invoke(context.Background(), "/proxy.Any/Thing", &testpb.Empty{}, &testpb.Empty{})
	if status.Code(err) != grpccodes.Internal {
		t.Fatalf("got %v, want INTERNAL", err)
	}
	s := spanByKind(env.spans(t, 2), trace.SpanKindServer, "")
	wantAttr(t, s, "rpc.response.status_code", "INTERNAL")
	wantAttr(t, s, "rpc.method", "_OTHER")
	if _, ok := env.logs.find("panic in gRPC handler"); !ok {
		t.Error("no ERROR log for the stream panic")
	}
}
