package integration

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/internal/testbackend"
	"github.com/observekit/observe/middleware"
	"go.uber.org/goleak"
)

// 100 Init/Shutdown cycles, every signal on (OTLP traces, metrics push and
// logs to a live collector, alternating gRPC and HTTP; profiles pushed to a
// Pyroscope receiver; the admin listener), with traffic in each: nothing is
// left behind, neither goroutines nor file descriptors.
func TestLifecycleHundredCycles(t *testing.T) {
	cycles := 100
	if testing.Short() {
		cycles = 20
	}
	reliabEnv(t)
	collectors := map[string]*testbackend.FaultServer{
		"grpc":          testbackend.StartFault(t, testbackend.FaultNone, "grpc"),
		"http/protobuf": testbackend.StartFault(t, testbackend.FaultNone, "http/protobuf"),
	}
	pyro := testbackend.StartPyroscope(t)
	t.Setenv("OBSERVE_ADMIN_ADDR", "127.0.0.1:0")
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_METRICS_EXPORTER", "prometheus,otlp")
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "50")
	t.Setenv("OTEL_LOGS_EXPORTER", "otlp")
	t.Setenv("PYROSCOPE_SERVER_ADDRESS", pyro.URL)

	h := workHandler()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	cycle := func(i int) {
		proto := "grpc"
		if i%2 != 0 {
			proto = "http/protobuf"
		}
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", proto)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collectors[proto].URL)
		obs, err := observe.Init(context.Background(), observe.WithServiceName("cycle"), observe.WithLogWriter(io.Discard),
			observe.WithMutexProfiling(), observe.WithBlockProfiling())
		if err != nil {
			t.Fatalf("cycle %d: Init: %v", i, err)
		}
		newDriver(h).serve(t, 50)
		resp, err := client.Get("http://" + obs.AdminAddr() + "/metrics")
		if err != nil {
			t.Fatalf("cycle %d: admin: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// Let the push and export goroutines get going, so Shutdown has
		// something to stop.
		if err := instance.Of(obs).Tracing.ForceFlush(context.Background()); err != nil {
			t.Fatalf("cycle %d: flush: %v", i, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := obs.Shutdown(ctx); err != nil {
			t.Fatalf("cycle %d: Shutdown: %v", i, err)
		}
	}

	// A cycle of each protocol first: what a process does once is not a
	// leak (the runtime's netpoller; the OTLP/HTTP exporters' shared
	// transports, which keep one idle connection per collector for the
	// process's life, however many exporters come and go).
	cycle(-2)
	cycle(-1)
	client.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	ignore := goleak.IgnoreCurrent()
	fdBase := fdCount(t)
	gBase := runtime.NumGoroutine()

	start := time.Now()
	for i := 0; i < cycles; i++ {
		cycle(i)
	}
	elapsed := time.Since(start)
	client.CloseIdleConnections()

	// File descriptors: every socket of every cycle is closed (the
	// collectors' ends close once the clients' do: give them a moment).
	deadline := time.Now().Add(5 * time.Second)
	fds := fdCount(t)
	for fds > fdBase && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		fds = fdCount(t)
	}
	if fds > fdBase {
		t.Errorf("%d file descriptors open after %d cycles, %d before (collectors: grpc %s, http %s; pyroscope %s):\n%s",
			fds, cycles, fdBase, collectors["grpc"].Addr, collectors["http/protobuf"].Addr, pyro.URL, fdList())
	}
	// Goroutines: none of the cycles' is left (the collectors' connection
	// goroutines end with the connections). A pooled HTTP connection of the
	// exporters' shared transports may have been replaced by a new one (new
	// goroutines, same count): the fd count above says the pool did not
	// grow, and the goroutine count here says so too.
	if err := goleak.Find(ignore, goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop")); err != nil {
		t.Errorf("goroutines left after %d cycles: %v", cycles, err)
	}
	g := runtime.NumGoroutine()
	for g > gBase && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		g = runtime.NumGoroutine()
	}
	if g > gBase {
		t.Errorf("%d goroutines after %d cycles, %d before", g, cycles, gBase)
	}
	t.Logf("%d cycles in %s (%s each); fds %d → %d; goroutines %d → %d; uploads to Pyroscope: %d", cycles, elapsed.Round(time.Millisecond),
		(elapsed / time.Duration(cycles)).Round(100*time.Microsecond), fdBase, fds, gBase, g, len(pyro.Uploads()))
}

// Shutdown is safe twice and concurrently: while the first call waits on a
// collector that never answers, every other call returns by its own
// deadline; once the first is done, every later call returns its result at
// once.
func TestLifecycleShutdownTwiceAndConcurrently(t *testing.T) {
	reliabEnv(t)
	bh := testbackend.StartFault(t, testbackend.FaultBlackhole, "http/protobuf")
	exportEverySignal(t, bh.URL, "")
	obs, err := observe.Init(context.Background(), observe.WithLogWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	newDriver(workHandler()).serve(t, 3000)

	const firstDeadline = 600 * time.Millisecond
	type result struct {
		deadline, took time.Duration
		err            error
	}
	results := make(chan result, 16)
	var wg sync.WaitGroup
	call := func(d time.Duration) {
		defer wg.Done()
		took, err := shutdownWithin(obs, d)
		results <- result{d, took, err}
	}
	wg.Add(1)
	go call(firstDeadline)
	time.Sleep(20 * time.Millisecond) // the first is under way
	for _, d := range []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 2 * time.Second, 2 * time.Second} {
		wg.Add(1)
		go call(d)
	}
	wg.Wait()
	close(results)
	var firstErr error
	for r := range results {
		// Every call returns by its own deadline, or once the first is
		// done, whichever comes first.
		limit := min(r.deadline, firstDeadline) + shutdownSlack
		if r.took > limit {
			t.Errorf("Shutdown with a %s deadline took %s", r.deadline, r.took)
		}
		if r.deadline == firstDeadline {
			firstErr = r.err
		}
		if r.deadline < firstDeadline && r.took < r.deadline-5*time.Millisecond && r.err == nil && firstErr == nil {
			// Returned early: only possible once the first finished.
			t.Logf("Shutdown(%s) returned after %s: the first had finished", r.deadline, r.took)
		}
	}
	// After: idempotent, immediate, the first call's result.
	for i := 0; i < 3; i++ {
		took, err := shutdownWithin(obs, time.Second)
		if took > 50*time.Millisecond {
			t.Errorf("Shutdown after Shutdown took %s", took)
		}
		if !errors.Is(err, firstErr) && (err == nil) != (firstErr == nil) {
			t.Errorf("later Shutdown returned %v, the first %v", err, firstErr)
		}
	}
	// A nil Observer (Init failed) shuts down quietly.
	var nilObs *observe.Observer
	if err := nilObs.Shutdown(context.Background()); err != nil {
		t.Errorf("nil Observer: %v", err)
	}
}

// Requests in flight when Shutdown starts complete normally, with their
// whole response; requests after Shutdown pass straight through.
func TestLifecycleInFlightRequestsComplete(t *testing.T) {
	reliabEnv(t)
	col := testbackend.StartFault(t, testbackend.FaultNone, "grpc")
	exportEverySignal(t, col.URL, "grpc")
	obs, err := observe.Init(context.Background(), observe.WithLogWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}

	const n = 16
	var inside sync.WaitGroup
	inside.Add(n)
	release := make(chan struct{})
	var entered atomic.Int32
	body := make([]byte, 64<<10)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slow/{id}", func(w http.ResponseWriter, r *http.Request) {
		if entered.Add(1) <= n {
			inside.Done()
			<-release
		}
		_, span := obs.Tracer("test").Start(r.Context(), "inner")
		defer span.End()
		slog.InfoContext(r.Context(), "slow request", "id", r.PathValue("id"))
		w.Header().Set("Content-Length", "65536")
		for off := 0; off < len(body); off += 8 << 10 {
			_, _ = w.Write(body[off : off+8<<10])
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
	})
	srv := httptest.NewServer(middleware.HTTP(mux))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()

	get := func() error {
		resp, err := client.Get(srv.URL + "/slow/1")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 || len(got) != len(body) {
			return errors.New("incomplete response: " + resp.Status)
		}
		return nil
	}
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() { errs <- get() }()
	}
	inside.Wait()
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- obs.Shutdown(ctx)
	}()
	time.Sleep(50 * time.Millisecond) // Shutdown under way with requests in the handler
	close(release)
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Errorf("request in flight during Shutdown: %v", err)
		}
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	// After Shutdown the middleware passes requests through.
	if err := get(); err != nil {
		t.Errorf("request after Shutdown: %v", err)
	}
}

// Nothing outlives Shutdown: with every signal exporting to a collector
// that never answers, at the default export timeouts (10s), Shutdown
// returns by its deadline and every goroutine it started ends right after
// (exports in flight are cut short, not left to time out).
func TestLifecycleNothingOutlivesShutdown(t *testing.T) {
	for _, proto := range []string{"grpc", "http/protobuf"} {
		t.Run(proto, func(t *testing.T) {
			reliabEnv(t)
			bh := testbackend.StartFault(t, testbackend.FaultBlackhole, proto)
			exportEverySignal(t, bh.URL, proto)
			t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
			before := runtime.NumGoroutine()
			obs, err := observe.Init(context.Background(), observe.WithLogWriter(io.Discard))
			if err != nil {
				t.Fatal(err)
			}
			d := newDriver(workHandler())
			d.serve(t, 3000)
			time.Sleep(300 * time.Millisecond) // exports under way, hanging
			took, _ := shutdownWithin(obs, 200*time.Millisecond)
			if took > 200*time.Millisecond+shutdownSlack {
				t.Errorf("Shutdown took %s with a 200ms deadline", took)
			}
			bh.Close()
			start := time.Now()
			for runtime.NumGoroutine() > before && time.Since(start) < 5*time.Second {
				time.Sleep(10 * time.Millisecond)
			}
			settle := time.Since(start)
			if n := runtime.NumGoroutine(); n > before || settle > time.Second {
				t.Errorf("goroutines %d → %d, settled %s after Shutdown returned (want within 1s):\n%s", before, n, settle, goroutineDump())
			}
			t.Logf("Shutdown %s; goroutines back to %d within %s", took.Round(time.Millisecond), before, settle.Round(time.Millisecond))
		})
	}
}
