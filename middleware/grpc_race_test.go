package middleware_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/stats"
)

// inHeaderGate is a second stats handler, as a program may have (its own
// metrics, another tracer). gRPC calls it after observe's handler and before
// it dispatches the call; it waits until the call's
// context has ended (a client that gave up), and a little more. That is
// the window in which observe used to decide "no dispatch yet, so the server
// rejected the method" and record a served method as UNIMPLEMENTED.
type inHeaderGate struct{}

func (inHeaderGate) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}

func (inHeaderGate) HandleRPC(ctx context.Context, rs stats.RPCStats) {
	if _, ok := rs.(*stats.InHeader); !ok {
		return
	}
	select {
	case <-ctx.Done():
		time.Sleep(50 * time.Millisecond) // a slow handler, seen after the end
	case <-time.After(5 * time.Second):
	}
}

func (inHeaderGate) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (inHeaderGate) HandleConn(context.Context, stats.ConnStats)                       {}

// serverCallStatuses returns the rpc.method and status of every server span.
func serverCallStatuses(spans []sdktrace.ReadOnlySpan) (methods, codes []string) {
	for _, s := range spans {
		if s.SpanKind() != trace.SpanKindServer {
			continue
		}
		a := map[attribute.Key]string{}
		for _, kv := range s.Attributes() {
			a[kv.Key] = kv.Value.Emit()
		}
		methods = append(methods, a["rpc.method"])
		codes = append(codes, a["rpc.response.status_code"])
	}
	return methods, codes
}

// A call to a served method whose client gives up before the server
// dispatches it is recorded with the client's status, under its method,
// never as an UNIMPLEMENTED _OTHER call: the server does dispatch it.
func TestGRPCCallEndedBeforeDispatchIsNotUnimplemented(t *testing.T) {
	env := setup(t)
	conn := grpcPair(t, grpc.StatsHandler(inHeaderGate{}))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{})
	if err == nil {
		t.Fatal("the gated call succeeded")
	}
	// Wait for the server span, then a little longer: a wrong early
	// verdict and the right late one are both single spans.
	spans := env.spans(t, 2)
	methods, codes := serverCallStatuses(spans)
	if len(methods) != 1 {
		t.Fatalf("server spans: %v", names(spans))
	}
	if methods[0] != "grpc.testing.TestService/UnaryCall" || codes[0] == "UNIMPLEMENTED" {
		t.Errorf("served method recorded as rpc.method=%s status=%s", methods[0], codes[0])
	}
	if codes[0] == "OK" {
		t.Errorf("status %s for a call the client gave up on", codes[0])
	}
	got := env.metricWith(t, "rpc_server_call_duration_seconds", "count=1")
	if want := "rpc_method=grpc.testing.TestService/UnaryCall"; !strings.Contains(got, want) {
		t.Errorf("server metric: %s, want %s", got, want)
	}
}

// Many fresh servers, each taking its first calls concurrently (the
// instrumentation has seen no call served yet), some of them given up by
// their clients at varying moments: a served method is never recorded as
// UNIMPLEMENTED, and every call gets exactly one server span.
func TestGRPCConcurrentFirstCallsOnFreshServers(t *testing.T) {
	env := setup(t)
	const servers, calls = 12, 8
	var wg sync.WaitGroup
	for i := range servers {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer(middleware.GRPCServer()...)
		testpb.RegisterTestServiceServer(srv, testService{})
		served := make(chan struct{})
		go func() { defer close(served); _ = srv.Serve(ln) }()
		conn, err := grpc.NewClient(ln.Addr().String(), append(middleware.GRPCClient(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			t.Fatal(err)
		}
		conn.Connect()
		var callers sync.WaitGroup
		for j := range calls {
			callers.Add(1)
			go func() {
				defer callers.Done()
				ctx := context.Background()
				if j%2 == 1 { // some clients give up, at varying moments
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, time.Duration(i*calls+j)*50*time.Microsecond)
					defer cancel()
				}
				c := testpb.NewTestServiceClient(conn)
				if j%4 == 0 {
					stream, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
						ResponseParameters: []*testpb.ResponseParameters{{}, {}}})
					if err == nil {
						for {
							if _, err := stream.Recv(); err != nil {
								break
							}
						}
					}
					return
				}
				_, _ = c.UnaryCall(ctx, &testpb.SimpleRequest{})
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			callers.Wait()
			conn.Close()
			srv.GracefulStop()
			<-served
		}()
	}
	wg.Wait()
	// Calls the client gave up before sending have no server span; every
	// one sent has one, which ends. Wait until they have settled.
	var spans []sdktrace.ReadOnlySpan
	deadline := time.Now().Add(5 * time.Second)
	for prev := -1; time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		spans = env.tp.Store().Spans()
		if len(spans) == prev {
			break
		}
		prev = len(spans)
	}
	methods, codes := serverCallStatuses(spans)
	if len(methods) == 0 {
		t.Fatal("no server spans")
	}
	for k := range methods {
		if codes[k] == "UNIMPLEMENTED" || methods[k] == "_OTHER" {
			t.Errorf("served method recorded as rpc.method=%s status=%s", methods[k], codes[k])
		}
	}
	t.Logf("%d server spans over %d calls", len(methods), servers*calls)
}

// A call to a method the server does not serve, whose client is gone
// before the server answers, gets no stats event after its context ends:
// the safety net still ends its span, with the client's status, as of the
// moment the context ended.
func TestGRPCRejectedCallOfGoneClientEnds(t *testing.T) {
	env := setup(t)
	conn := grpcPair(t, grpc.StatsHandler(inHeaderGate{}))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := conn.Invoke(ctx, "/no.such.Service/Method", &testpb.Empty{}, &testpb.Empty{}); err == nil {
		t.Fatal("the call succeeded")
	}
	var s sdktrace.ReadOnlySpan
	deadline := time.Now().Add(10 * time.Second)
	for s == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		s = spanByKind(env.tp.Store().Spans(), trace.SpanKindServer, "")
	}
	if s == nil {
		t.Fatal("the server span never ended")
	}
	wantAttr(t, s, "rpc.method", "_OTHER")
	// The server sees the client's deadline or its cancel, whichever first.
	if c := attrs(s)["rpc.response.status_code"].Emit(); c != "DEADLINE_EXCEEDED" && c != "CANCELLED" {
		t.Errorf("status %s", c)
	}
	if d := s.EndTime().Sub(s.StartTime()); d > time.Second {
		t.Errorf("span lasted %v: it ends when the call's context ended, not when the safety net ran", d)
	}
}
