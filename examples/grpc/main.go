// Command grpc is a gRPC server and client instrumented with observe: server
// and client spans, rpc_server/client_call_duration_seconds, trace-correlated
// logs, for unary and streaming calls, and gRPC health backed by observe's
// health state (obs.RegisterGRPCHealth), drained by obs.Shutdown.
// It uses grpc's interop TestService, so there is no .proto to generate.
//
//	go run ./examples/grpc                   # serve on 127.0.0.1:50051, call it once a second
//	go run ./examples/grpc -duration 5s      # …and exit after 5s
//
// Then: curl http://127.0.0.1:9464/metrics | grep rpc_
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/middleware"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "address to serve gRPC on")
	duration := flag.Duration("duration", 0, "exit after this long (0: run until interrupted)")
	every := flag.Duration("every", time.Second, "how often the client calls")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if err := run(ctx, *addr, *every); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr string, every time.Duration) error {
	obs, err := observe.Init(ctx, observe.WithServiceName("grpc-example"), observe.WithServiceVersion("1.0.0"))
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = obs.Shutdown(sctx)
	}()

	// The server: observe's options first, so its panic recovery covers
	// any interceptor of yours after them.
	srv := grpc.NewServer(middleware.GRPCServer()...)
	testpb.RegisterTestServiceServer(srv, service{})
	// grpc.health.v1.Health (Check, Watch, List) answered from observe's
	// health state: SERVING once Init returned, NOT_SERVING while draining.
	obs.RegisterGRPCHealth(srv)
	// Shutdown drains it: NOT_SERVING at once, the drain delay, GracefulStop
	// (Stop at the deadline), then the telemetry flush.
	obs.AddGRPCServer(srv)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "\ngrpc example serving on %s\n", ln.Addr())
	if a := obs.AdminAddr(); a != "" {
		fmt.Fprintf(os.Stderr, "  metrics: curl http://%s/metrics | grep rpc_\n", a)
		fmt.Fprintf(os.Stderr, "  traces:  curl http://%s/debug/traces\n\n", a)
	}

	// The client: spans, metrics, and the trace context in the metadata.
	conn, err := grpc.NewClient(ln.Addr().String(),
		append(middleware.GRPCClient(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	healthClient := healthpb.NewHealthClient(conn)

	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		if err := callOnce(ctx, client, healthClient, i); err != nil && ctx.Err() == nil {
			return err // a bounded run (-duration) is a check: every round must work
		}
		select {
		case <-ctx.Done():
			return nil // the deferred obs.Shutdown drains the server
		case err := <-served:
			return err
		case <-t.C:
		}
	}
}

// callOnce makes one call of each kind, in one trace, and says whether any
// answered other than expected.
func callOnce(ctx context.Context, client testpb.TestServiceClient, hc healthpb.HealthClient, i int) error {
	ctx, span := otelTracer().Start(ctx, "client.round")
	defer span.End()

	h, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: testpb.TestService_ServiceDesc.ServiceName})
	slog.InfoContext(ctx, "health", "status", h.GetStatus().String(), "error", err)
	if h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health: %v %v", h.GetStatus(), err)
	}

	req := &testpb.SimpleRequest{}
	want := codes.OK
	if i%5 == 4 { // now and then a failing call, to see errors in the RED metrics
		want = codes.NotFound
		req.ResponseStatus = &testpb.EchoStatus{Code: int32(want), Message: "no such order"}
	}
	_, err = client.UnaryCall(ctx, req)
	slog.InfoContext(ctx, "unary call", "code", status.Code(err).String())
	if status.Code(err) != want {
		return fmt.Errorf("unary call: %v, want %v", err, want)
	}

	stream, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{Size: 8}, {Size: 8}, {Size: 8}}})
	n := 0
	for err == nil {
		if _, err = stream.Recv(); err == nil {
			n++
		}
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	slog.InfoContext(ctx, "server-streaming call", "messages", n, "code", status.Code(err).String())
	if err != nil || n != 3 {
		return fmt.Errorf("server-streaming call: %d messages, %v", n, err)
	}

	bidi, err := client.FullDuplexCall(ctx)
	if err == nil {
		for range 3 {
			if err = bidi.Send(&testpb.StreamingOutputCallRequest{}); err != nil {
				break
			}
			if _, err = bidi.Recv(); err != nil {
				break
			}
		}
		_ = bidi.CloseSend()
		for err == nil {
			_, err = bidi.Recv()
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	slog.InfoContext(ctx, "bidi-streaming call", "code", status.Code(err).String())
	if err != nil {
		return fmt.Errorf("bidi-streaming call: %v", err)
	}
	return nil
}
