package bench

import (
	"context"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/test/bufconn"
)

// A unary call through an in-memory connection (bufconn), client and server
// both instrumented; see trace_http_test.go for the terms of comparison.

type unaryService struct {
	testpb.UnimplementedTestServiceServer
}

func (unaryService) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Username: "u"}, nil
}

func grpcConn(b *testing.B, server []grpc.ServerOption, client []grpc.DialOption) testpb.TestServiceClient {
	b.Helper()
	ln := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(server...)
	testpb.RegisterTestServiceServer(srv, unaryService{})
	go func() { _ = srv.Serve(ln) }()
	conn, err := grpc.NewClient("passthrough:///bufnet", append(client,
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(); srv.Stop() })
	return testpb.NewTestServiceClient(conn)
}

// warmGRPC makes bare unary calls for a second, once per process, before
// the first gRPC row is measured. Right after a process starts, each call's
// server goroutine begins on a small stack and grows it (copying) on every
// call, until the runtime's adaptive initial stack size has caught up over
// a few garbage collections; that charged whichever row ran first
// (observe's, in source order) several microseconds per call, more than the
// differences measured here.
func warmGRPC(b *testing.B) {
	warmGRPCOnce.Do(func() {
		c := grpcConn(b, nil, nil)
		req := &testpb.SimpleRequest{}
		for end := time.Now().Add(time.Second); time.Now().Before(end); {
			if _, err := c.UnaryCall(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

var warmGRPCOnce sync.Once

func runUnary(b *testing.B, c testpb.TestServiceClient) {
	warmGRPC(b)
	ctx := context.Background()
	req := &testpb.SimpleRequest{}
	if _, err := c.UnaryCall(ctx, req); err != nil { // connect, warm caches
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	for b.Loop() {
		if _, err := c.UnaryCall(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

func BenchmarkTraceGRPCUnary(b *testing.B) {
	runRotated(b, []row{
		{"observe", func(b *testing.B) {
			traceObserve(b)
			runUnary(b, grpcConn(b, middleware.GRPCServer(), middleware.GRPCClient()))
		}},
		{"otelgrpc", func(b *testing.B) {
			s := newOtelSDK(b)
			opts := []otelgrpc.Option{otelgrpc.WithTracerProvider(s.tp), otelgrpc.WithMeterProvider(s.mp), otelgrpc.WithPropagators(s.prop)}
			runUnary(b, grpcConn(b,
				[]grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(opts...))},
				[]grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(opts...))}))
		}},
		{"bare", func(b *testing.B) {
			runUnary(b, grpcConn(b, nil, nil))
		}},
		// grpc's own cost of stats handlers on both ends (events, header
		// copies): otelgrpc pays it; observe pays the server's half
		// (MetricsGRPCUnary/noop-stats-handler-server), its client runs on
		// interceptors.
		{"noop-stats-handler", func(b *testing.B) {
			runUnary(b, grpcConn(b,
				[]grpc.ServerOption{grpc.StatsHandler(noopStats{})},
				[]grpc.DialOption{grpc.WithStatsHandler(noopStats{})}))
		}},
	})
}

// row is one contender of a benchmark group.
type row struct {
	name string
	fn   func(*testing.B)
}

// runRotated runs a group's rows as sub-benchmarks, the first one being
// row OBSERVE_BENCH_ROUND (mod the number of rows), and the others in turn.
// make bench runs the gRPC groups once per process, round after round
// (.ci/benchgrpc.sh): over as many rounds as rows, every row has run in
// every position, so whatever a position costs (the process's state after
// the rows before it: heap size, garbage-collection phase, goroutine stack
// sizes, which swing a ~30 µs gRPC call by several microseconds) falls on
// every row alike, and cmd/benchtable -added pairs each row with the bare
// row of the same process.
func runRotated(b *testing.B, rows []row) {
	k, _ := strconv.Atoi(os.Getenv("OBSERVE_BENCH_ROUND"))
	k = ((k % len(rows)) + len(rows)) % len(rows)
	for i := range rows {
		r := rows[(k+i)%len(rows)]
		b.Run(r.name, r.fn)
	}
}

type noopStats struct{}

func (noopStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (noopStats) HandleRPC(context.Context, stats.RPCStats)                         {}
func (noopStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (noopStats) HandleConn(context.Context, stats.ConnStats)                       {}
