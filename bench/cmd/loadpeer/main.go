// Command loadpeer is the quickstart's /hello/{name} service instrumented
// with the usual peer stack instead of observe, for the load test's
// side-by-side figures (.ci/loadtest.sh):
//
//   - traces: otelhttp with the OpenTelemetry SDK, parentbased_always_on,
//     the SDK's BatchSpanProcessor and the OTLP/gRPC exporter at its default
//     endpoint (as observe's default);
//   - metrics: promhttp's InstrumentHandlerDuration and InstrumentHandlerInFlight
//     on a Prometheus registry, served on /metrics;
//   - logs: slog's JSONHandler on stdout, the handler's line plus an access
//     log line per request carrying trace_id and span_id (observe writes the
//     same two lines).
//
// With -instrument=false it serves the same handler and application log
// line with none of that: the baseline of the peer stack's ratio.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/observekit/observe/bench/internal/peer"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to serve on")
	instrument := flag.Bool("instrument", true, "wrap the handler with the peer stack")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stdout, nil)))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello/{name}", hello)
	var handler http.Handler = mux
	var shutdown func(context.Context) error
	if *instrument {
		var err error
		handler, shutdown, err = instrumented(ctx, mux)
		if err != nil {
			log.Fatal(err)
		}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if shutdown != nil {
		_ = shutdown(sctx)
	}
}

func hello(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	slog.InfoContext(r.Context(), "saying hello", "name", name)
	fmt.Fprintf(w, "hello, %s\n", name)
}

func instrumented(ctx context.Context, mux *http.ServeMux) (http.Handler, func(context.Context) error, error) {
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, nil, err
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
		sdktrace.WithBatcher(exp),
	)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	reg := prometheus.NewRegistry()
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_server_request_duration_seconds",
		Help:    "Duration of HTTP server requests.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10},
	}, []string{"method", "code"})
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{Name: "http_server_active_requests", Help: "In-flight requests."})
	reg.MustRegister(duration, inFlight)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	var h http.Handler = peer.AccessLog(mux, slog.Default())
	h = promhttp.InstrumentHandlerInFlight(inFlight, promhttp.InstrumentHandlerDuration(duration, h))
	h = otelhttp.NewHandler(h, "server", otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return r.Method + " " + r.Pattern
	}))
	return h, tp.Shutdown, nil
}
