// Command quickstart is a small HTTP service instrumented with observe: RED
// metrics, traces, trace-correlated JSON logs and runtime log levels, with
// nothing but observe.Init and middleware.HTTP.
//
//	go run ./examples/quickstart             # serve on :8080, admin on :9464
//	go run ./examples/quickstart -traffic    # …and send itself some requests (span↔profile links on)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/logging"
	"github.com/observekit/observe/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to serve on")
	traffic := flag.Bool("traffic", false, "send requests to this service so there is something to look at")
	duration := flag.Duration("duration", 0, "exit after this long (0: run until interrupted)")
	instrument := flag.Bool("instrument", true, "wrap the handler with observe's middleware (false: for load-test comparison)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	opts := []observe.Option{
		observe.WithServiceName("quickstart"),
		observe.WithServiceVersion("1.0.0"),
		observe.WithEnvironment("dev"),
	}
	if *traffic {
		// The demo: span↔profile links on, so that the status page's trace
		// view shows each slow request's own CPU profile. They cost a few
		// percent of CPU (README, "Continuous profiling"), so they are off
		// by default without Pyroscope; OBSERVE_PROFILE_LINKS=on turns them
		// on without code.
		opts = append(opts, observe.WithProfileLinks(true))
	}
	obs, err := observe.Init(ctx, opts...)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = obs.Shutdown(sctx)
	}()

	// A metric of your own, served with observe's on the admin /metrics.
	greetings := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quickstart_greetings_total", Help: "Greetings said.",
	})
	obs.Registerer().MustRegister(greetings)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		greetings.Inc()
		hello(w, r)
	})
	mux.HandleFunc("GET /work", work)
	mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("something went wrong") })

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		// Not log.Fatal: after Init it writes at INFO through the observe
		// logger, whose buffered INFO lines an os.Exit would lose. An ERROR
		// line is written before the call returns.
		slog.Error("cannot listen", "addr", *addr, "error", err)
		os.Exit(1)
	}
	var handler http.Handler = mux
	if *instrument {
		// WithObserver: this Observer's instruments, explicitly (the
		// default is the latest Init's).
		handler = middleware.HTTP(mux, middleware.WithObserver(obs))
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("server stopped", "error", err)
		}
	}()

	base := "http://" + ln.Addr().String()
	admin := obs.AdminAddr()
	if page := obs.StatusURL(); page != "" {
		fmt.Fprintf(os.Stderr, "\nstatus page:  %s\n", page)
	}
	fmt.Fprintf(os.Stderr, "\nquickstart is serving on %s\n", base)
	fmt.Fprintf(os.Stderr, "  try:        curl %s/hello/gopher\n", base)
	if admin != "" {
		fmt.Fprintf(os.Stderr, "  metrics:    curl http://%s/metrics\n", admin)
		fmt.Fprintf(os.Stderr, "  log level:  curl http://%s/loglevel\n", admin)
		fmt.Fprintf(os.Stderr, "              curl -X PUT -d '{\"level\":\"debug\",\"ttl\":\"1m\"}' http://%s/loglevel\n", admin)
		fmt.Fprintf(os.Stderr, "  health:     curl http://%s/readyz\n", admin)
		fmt.Fprintf(os.Stderr, "  profiles:   go tool pprof http://%s/debug/pprof/profile?seconds=5\n\n", admin)
	}

	if *traffic {
		go sendTraffic(ctx, base)
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
}

func hello(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	slog.InfoContext(r.Context(), "saying hello", "name", name)
	fmt.Fprintf(w, "hello, %s\n", name)
}

// inventoryLog has a level of its own: PUT /loglevel {"logger":"inventory","level":"debug"}
// shows its DEBUG lines without those of the rest of the service.
var inventoryLog = logging.Named("inventory")

func work(w http.ResponseWriter, r *http.Request) {
	ctx, span := otel.Tracer("quickstart").Start(r.Context(), "compute")
	defer span.End()
	d := time.Duration(rand.IntN(50)) * time.Millisecond
	if rand.IntN(15) == 0 {
		d = 300*time.Millisecond + d*6 // now and then a slow one, to find on the status page
	}
	slog.InfoContext(ctx, "computing", "budget", d)
	_, query := otel.Tracer("quickstart").Start(ctx, "query inventory")
	time.Sleep(d)
	query.End()
	_, price := otel.Tracer("quickstart").Start(ctx, "price basket")
	total := priceBasket(d / 3) // CPU work: what the trace's profile shows
	price.End()
	inventoryLog.DebugContext(ctx, "computed", "took", d, "total", total)
	if rand.IntN(10) == 0 {
		slog.ErrorContext(ctx, "work failed", "error", errors.New("upstream timeout"))
		http.Error(w, "upstream timeout", http.StatusBadGateway)
		return
	}
	fmt.Fprintln(w, "done")
}

// priceBasket computes for about d.
func priceBasket(d time.Duration) uint64 {
	var x uint64 = 1
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := range 10000 {
			x = x*6364136223846793005 + uint64(i)
		}
	}
	return x
}

func sendTraffic(ctx context.Context, base string) {
	paths := []string{"/hello/gopher", "/hello/ada", "/work", "/work", "/missing"}
	client := &http.Client{Timeout: 5 * time.Second}
	for i := 0; ctx.Err() == nil; i++ {
		p := paths[i%len(paths)]
		if i%50 == 49 {
			p = "/panic"
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+p, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
