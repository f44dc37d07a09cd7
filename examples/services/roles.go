package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// runRole is one service: it serves until its stdin closes or it is
// interrupted, then drains and flushes its telemetry.
func runRole(role string) int {
	ctx := context.Background()
	obs, err := observe.Init(ctx, observe.WithServiceVersion("1.0.0"), observe.WithEnvironment("demo"))
	if err != nil {
		fmt.Fprintln(os.Stderr, role, err)
		return 2
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = obs.Shutdown(sctx)
	}()
	ln, err := net.Listen("tcp", os.Getenv("LISTEN_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, role, err)
		return 2
	}
	var stop func()
	switch role {
	case "inventory":
		srv := grpc.NewServer(middleware.GRPCServer()...)
		testpb.RegisterTestServiceServer(srv, inventory{})
		go func() { _ = srv.Serve(ln) }()
		stop = srv.GracefulStop
	case "orders":
		conn, err := grpc.NewClient(os.Getenv("INVENTORY_ADDR"),
			append(middleware.GRPCClient(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			fmt.Fprintln(os.Stderr, role, err)
			return 2
		}
		defer conn.Close()
		stop = serveHTTP(ln, orders(testpb.NewTestServiceClient(conn)))
	case "gateway":
		stop = serveHTTP(ln, gateway(os.Getenv("ORDERS_URL")))
	default:
		fmt.Fprintln(os.Stderr, "unknown role", role)
		return 2
	}
	fmt.Printf("READY %s %s\n", ln.Addr(), obs.AdminAddr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(eof) }()
	select {
	case <-sig:
	case <-eof:
	}
	stop()
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

// gateway is the edge: GET /orders/{id} asks the orders service, through
// middleware.Transport (a client span; traceparent sent on), and answers
// with the trace id in a Trace-Id header, to look the trace up.
func gateway(ordersURL string) http.Handler {
	client := &http.Client{Transport: middleware.Transport(nil), Timeout: 5 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trace-Id", trace.SpanContextFromContext(r.Context()).TraceID().String())
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, ordersURL+"/orders/"+r.PathValue("id"), nil)
		resp, err := client.Do(req)
		if err != nil {
			slog.ErrorContext(r.Context(), "orders service unreachable", "error", err)
			http.Error(w, "orders service unreachable", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
	return mux
}

// orders is the middle service: GET /orders/{id} asks the inventory over
// gRPC (a client span; the trace context in the metadata).
func orders(inv testpb.TestServiceClient) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		slog.InfoContext(r.Context(), "loading order", "order.id", id)
		resp, err := inv.UnaryCall(r.Context(), &testpb.SimpleRequest{
			FillUsername: true, Payload: &testpb.Payload{Body: []byte(id)}})
		switch status.Code(err) {
		case codes.OK:
		case codes.NotFound:
			http.Error(w, "no such order", http.StatusNotFound)
			return
		default:
			slog.ErrorContext(r.Context(), "inventory failed", "error", err)
			http.Error(w, "inventory failed", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"order": id, "item": resp.GetUsername()})
	})
	return mux
}

// inventory is the gRPC service at the end of the chain (grpc's interop
// TestService, so no .proto to generate): UnaryCall looks the item up.
type inventory struct {
	testpb.UnimplementedTestServiceServer
}

func (inventory) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	id := string(req.GetPayload().GetBody())
	if id == "missing" {
		slog.WarnContext(ctx, "unknown item", "order.id", id)
		return nil, status.Error(codes.NotFound, "no such item")
	}
	slog.InfoContext(ctx, "item found", "order.id", id)
	return &testpb.SimpleResponse{Username: "item-" + id}, nil
}
