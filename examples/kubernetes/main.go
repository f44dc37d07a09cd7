// Command kubernetes is a service shaped for a rolling deploy: it holds
// startup while it warms up, reports readiness from its dependencies over
// HTTP (/readyz on the admin port) and gRPC (grpc.health.v1), and on
// SIGTERM drains before it stops, so no request is lost. See the README's
// "Deploying on Kubernetes" for the matching pod settings.
//
//	go run ./examples/kubernetes -warmup 2s
//	curl 'http://127.0.0.1:9464/readyz?verbose'
//	grpc-health-probe -addr=127.0.0.1:8081
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/middleware"
	"google.golang.org/grpc"
)

func main() {
	httpAddr := flag.String("http", "127.0.0.1:8080", "HTTP address")
	grpcAddr := flag.String("grpc", "127.0.0.1:8081", "gRPC address")
	warmup := flag.Duration("warmup", time.Second, "how long the pretend cache warm-up takes")
	drainDelay := flag.Duration("drain-delay", -1, "drain delay (default: OBSERVE_DRAIN_DELAY, or 5s in Kubernetes)")
	flag.Parse()

	ctx := context.Background()
	opts := []observe.Option{
		observe.WithServiceName("kubernetes-example"),
		observe.WithStartupGate(), // /startupz 503 until MarkStarted
	}
	if *drainDelay >= 0 {
		opts = append(opts, observe.WithDrainDelay(*drainDelay))
	}
	obs, err := observe.Init(ctx, opts...)
	if err != nil {
		log.Fatal(err)
	}

	// A critical dependency: failing takes the pod out of rotation.
	db := &fakeDB{}
	dbCheck := []observe.CheckOption{observe.CheckTimeout(500 * time.Millisecond)}
	obs.AddReadinessCheck("db", db.Ping, dbCheck...)
	// A non-critical one: failing answers 200 "degraded".
	obs.AddReadinessCheck("recommendations", func(ctx context.Context) error {
		return errors.New("recommendations backend unreachable")
	}, observe.CheckNonCritical())

	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })
	srv := &http.Server{Addr: *httpAddr, Handler: middleware.HTTP(mux), ReadHeaderTimeout: 5 * time.Second}
	obs.AddServer(srv) // Shutdown drains it

	gs := grpc.NewServer(middleware.GRPCServer()...)
	obs.RegisterGRPCHealth(gs) // what Kubernetes' grpc probes and grpc-health-probe ask
	obs.AddGRPCServer(gs)      // Shutdown drains it: GracefulStop, Stop at the deadline

	ln, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("http server", "error", err)
		}
	}()
	go func() {
		if err := gs.Serve(ln); err != nil {
			slog.Error("grpc server", "error", err)
		}
	}()

	time.Sleep(*warmup) // load caches, open pools…
	obs.MarkStarted()
	slog.Info("serving", "http", *httpAddr, "grpc", *grpcAddr, "admin", obs.AdminAddr())

	// SIGTERM: readiness 503 and NOT_SERVING at once, the drain delay
	// (5s in Kubernetes), servers stopped gracefully, telemetry flushed.
	if err := obs.ShutdownOnSignal(ctx, observe.DefaultShutdownTimeout); err != nil {
		slog.Error("shutdown", "error", err)
	}
}

type fakeDB struct{}

// Ping stands in for a real database ping that honours its context.
func (*fakeDB) Ping(ctx context.Context) error {
	select {
	case <-time.After(5 * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
