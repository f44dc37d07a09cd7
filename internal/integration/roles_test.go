package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/internal/tracing"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// roleEnv names the role a re-executed test binary plays.
const roleEnv = "OBSERVE_INTEGRATION_ROLE"

// runRole is a small service: it starts observe, serves until its stdin is
// closed, then shuts down (flushing its spans) and returns the exit code.
// It prints "READY <addr>" on stdout once it accepts connections.
func runRole(role string) int {
	ctx := context.Background()
	obs, err := observe.Init(ctx, observe.WithServiceName(os.Getenv("SERVICE_NAME")), observe.WithLogWriter(os.Stderr))
	if err != nil {
		fmt.Fprintln(os.Stderr, "observe.Init:", err)
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var stop func()
	switch role {
	case "frontend":
		stop = serveHTTP(ln, frontend(os.Getenv("BACKEND_URL")))
	case "backend":
		conn, err := grpc.NewClient(os.Getenv("ITEMSVC_ADDR"),
			append(middleware.GRPCClient(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer conn.Close()
		stop = serveHTTP(ln, backend(testpb.NewTestServiceClient(conn)))
	case "itemsvc":
		srv := grpc.NewServer(middleware.GRPCServer()...)
		testpb.RegisterTestServiceServer(srv, &itemService{obs: obs})
		go func() { _ = srv.Serve(ln) }()
		stop = srv.GracefulStop
	default:
		fmt.Fprintln(os.Stderr, "unknown role", role)
		return 2
	}
	fmt.Printf("READY %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // the test closes stdin to stop us
	stop()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := obs.Shutdown(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "shutdown:", err)
		return 1
	}
	if d := instance.Of(obs).Tracing.DroppedSpans(); d != 0 {
		fmt.Fprintln(os.Stderr, "spans dropped:", d)
		return 1
	}
	return 0
}

func serveHTTP(ln net.Listener, h http.Handler) func() {
	srv := &http.Server{Handler: middleware.HTTP(h), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
}

// frontend answers GET /api/items/{id} by asking the backend.
func frontend(backendURL string) http.Handler {
	client := &http.Client{Transport: middleware.Transport(nil), Timeout: 10 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), "GET", backendURL+"/internal/items/"+r.PathValue("id"), nil)
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
	return mux
}

// backend answers GET /internal/items/{id} by calling the item service.
func backend(items testpb.TestServiceClient) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /internal/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		resp, err := items.UnaryCall(r.Context(), &testpb.SimpleRequest{
			Payload:      &testpb.Payload{Body: []byte(r.PathValue("id"))},
			FillUsername: true,
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		_, _ = fmt.Fprintf(w, "item %s by %s", r.PathValue("id"), resp.GetUsername())
	})
	return mux
}

// itemService is the gRPC end of the chain. It makes a span of its own with
// the Observer's tracer and hands work to a goroutine with tracing.Go.
type itemService struct {
	testpb.UnimplementedTestServiceServer
	obs *observe.Observer
}

func (s *itemService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	_, span := s.obs.Tracer("itemsvc").Start(ctx, "items.lookup")
	span.SetAttributes(attribute.String("item.id", string(req.GetPayload().GetBody())))
	span.End()
	<-tracing.Go(ctx, "items.audit", func(ctx context.Context) {})
	if strings.TrimSpace(string(req.GetPayload().GetBody())) == "" {
		return nil, errors.New("no id")
	}
	return &testpb.SimpleResponse{Username: "itemsvc"}, nil
}
