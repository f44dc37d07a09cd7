package middleware_test

import (
	"context"
	"log"
	"net"
	"net/http"

	"github.com/observekit/observe"
	"github.com/observekit/observe/middleware"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// A service that is called over HTTP and calls others over HTTP and gRPC:
// one trace across all of them.
func Example() {
	ctx := context.Background()
	obs, err := observe.Init(ctx, observe.WithServiceName("checkout"))
	if err != nil {
		log.Fatal(err)
	}
	defer obs.Shutdown(ctx)

	// Outgoing HTTP: client spans, the trace context injected.
	client := &http.Client{Transport: middleware.Transport(nil)}

	// Outgoing gRPC.
	conn, err := grpc.NewClient("inventory:9090",
		append(middleware.GRPCClient(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), "GET", "http://pricing/quote", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close() // ends the client span
		}
	})
	log.Fatal(http.ListenAndServe(":8080", middleware.HTTP(mux)))
}

// A gRPC server with spans, RPC metrics and panic recovery.
func ExampleGRPCServer() {
	srv := grpc.NewServer(middleware.GRPCServer()...)
	// pb.RegisterInventoryServer(srv, &inventory{})
	ln, err := net.Listen("tcp", ":9090")
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(srv.Serve(ln))
}

// Recording chosen headers on server spans; sensitive ones are redacted.
func ExampleWithCapturedHeaders() {
	mux := http.NewServeMux()
	h := middleware.HTTP(mux, middleware.WithCapturedHeaders(
		[]string{"X-Request-Id", "Authorization"}, // request: Authorization is masked before export
		[]string{"X-Cache"},                       // response
	))
	log.Fatal(http.ListenAndServe(":8080", h))
}

// The middleware linked to one Observer explicitly: its spans and RED
// metrics go to obs whatever else runs observe.Init in the process.
func ExampleWithObserver() {
	ctx := context.Background()
	obs, err := observe.Init(ctx, observe.WithServiceName("checkout"))
	if err != nil {
		log.Fatal(err)
	}
	defer obs.Shutdown(ctx)

	mux := http.NewServeMux()
	handler := middleware.HTTP(mux, middleware.WithObserver(obs))
	client := &http.Client{Transport: middleware.Transport(nil, middleware.WithObserver(obs))}
	_ = client
	log.Fatal(http.ListenAndServe(":8080", handler))
}
