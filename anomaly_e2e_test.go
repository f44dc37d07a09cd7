package observe

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/observekit/observe/internal/redsample"
	"github.com/observekit/observe/internal/testbackend"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel/trace"
)

// End to end over loopback: a handler that turns slow is detected from the
// real RED histograms through the shared sampler; while the anomaly lasts
// its requests are sampled (head sampling at ratio 0 otherwise) and reach
// Jaeger, their log lines pass log sampling (1 in 1000 otherwise), a profile
// burst labelled with the anomaly is pushed to Pyroscope (the test
// receiver) and kept on /debug/anomalies; the hook is called once; when the
// handler is fast again the anomaly ends.
//
// The sampler's 10s ticks are too slow for a test: the test takes a sample
// every 400ms itself (o.red.Sample), each one an evaluation window.
func TestAnomalyEndToEnd(t *testing.T) {
	// Jaeger: required in CI; on a laptop without it the traces stay in
	// process (checked there all the same).
	var jaeger *testbackend.Jaeger
	if _, ok := testbackend.JaegerBin(); ok || testbackend.InCI() {
		jaeger = testbackend.StartJaeger(t)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.OTLPHTTP)
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	} else {
		t.Log("Jaeger not built (.ci/build-jaeger.sh): kept traces checked in process only")
	}
	pyro := testbackend.StartPyroscope(t)
	logs := &lockedLines{}
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "0")
	t.Setenv("OBSERVE_LOG_SAMPLING", "info=0.001")
	t.Setenv("PYROSCOPE_SERVER_ADDRESS", pyro.URL)
	t.Setenv("OBSERVE_ANOMALY_WINDOW", "400ms")
	t.Setenv("OBSERVE_ANOMALY_PROFILE_DURATION", "1s")
	t.Setenv("OBSERVE_ANOMALY_TAIL", "0s")
	o, err := Init(context.Background(), WithLogWriter(logs), WithAdminAddr("127.0.0.1:0"), WithAccessLog(false),
		WithServiceName("e2e-anomaly"), WithServiceVersion("v42"))
	if err != nil {
		t.Fatal(err)
	}
	shutdown := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := o.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}
	defer shutdown()
	if o.anomaly == nil {
		t.Fatal("anomaly detection is not running")
	}
	// The hook: a circuit breaker's open and close. Besides the latency
	// step, a loaded machine may see completions fall behind (a rate
	// anomaly on the same route): each anomaly gets its one call.
	var hookMu sync.Mutex
	hookCalls := map[string]int{}
	hookEnded := map[string]Anomaly{}
	o.OnAnomaly(func(ctx context.Context, a Anomaly) {
		hookMu.Lock()
		hookCalls[a.ID]++
		hookMu.Unlock()
		<-ctx.Done()
		hookMu.Lock()
		hookEnded[a.ID] = a
		hookMu.Unlock()
	})

	var slow atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /work", func(w http.ResponseWriter, r *http.Request) {
		// Sleeps long enough that a loaded machine's scheduling noise is
		// small beside them: 30ms, then 300ms.
		d := 30 * time.Millisecond
		if slow.Load() {
			d = 300 * time.Millisecond
		}
		time.Sleep(d)
		slog.InfoContext(r.Context(), "work done")
	})
	mux.HandleFunc("GET /other", func(w http.ResponseWriter, r *http.Request) {})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: middleware.HTTP(mux)}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	// Steady traffic: a request every 8ms whatever the answers take (about
	// 50 per window), and one to another route every 96ms.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	stop := make(chan struct{})
	var traffic sync.WaitGroup
	get := func(path string) {
		defer traffic.Done()
		resp, err := client.Get(base + path)
		if err == nil {
			resp.Body.Close()
		}
	}
	traffic.Add(1)
	go func() {
		defer traffic.Done()
		tick := time.NewTicker(8 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				traffic.Add(1)
				go get("/work")
				if i%12 == 0 {
					traffic.Add(1)
					go get("/other")
				}
			}
		}
	}()
	defer func() { close(stop); traffic.Wait() }()

	window := func() {
		time.Sleep(400 * time.Millisecond)
		o.red.Sample()
		if testing.Verbose() {
			h := o.red.History(redsample.Key{Kind: "http_server", Route: "/work"})
			if len(h) > 0 {
				d := h[len(h)-1]
				t.Logf("window: %d requests, p95 %.4f", d.Count, d.Quantile(0.95))
			}
		}
	}
	o.red.Sample()
	for range 12 { // warm-up (6 windows) and a baseline
		window()
	}
	if n := len(logs.find(t, "anomaly started")); n != 0 {
		t.Fatalf("%d anomalies on steady traffic: %v", n, logs.find(t, "anomaly started"))
	}
	sampledBefore := sampledSpans(o, "GET /work")
	if len(sampledBefore) != 0 {
		t.Fatalf("%d /work traces sampled before the anomaly at ratio 0", len(sampledBefore))
	}

	slow.Store(true)
	windows := 0
	for len(logs.find(t, "anomaly started")) == 0 && windows < 6 {
		window()
		windows++
	}
	starts := logs.find(t, "anomaly started")
	if len(starts) == 0 {
		t.Fatalf("×10 latency not detected within %d windows", windows)
	}
	t.Logf("detected after %d windows of 400ms: %v", windows, starts[0])
	if windows > 3 {
		t.Errorf("detected after %d windows, want ≤ 3", windows)
	}
	s := starts[0]
	if s["route"] != "/work" || s["anomaly.kind"] != "latency" || s["service.version"] != "v42" {
		t.Errorf("WARN line %v", s)
	}
	// The evidence: keep the route slow a little longer, under the anomaly.
	for range 4 {
		window()
	}
	kept := sampledSpans(o, "GET /work")
	if len(kept) < 20 {
		t.Fatalf("%d /work traces kept during the anomaly, want every new request's", len(kept))
	}
	if others := sampledSpans(o, "GET /other"); len(others) != 0 {
		t.Errorf("%d /other traces sampled: only the anomalous route's are kept", len(others))
	}
	// Every kept request's log line passed log sampling (1 in 1000).
	lines := map[string]bool{}
	for _, l := range logs.find(t, "work done") {
		lines[l["trace_id"].(string)] = true
	}
	missing := 0
	for _, sc := range kept {
		if !lines[sc.TraceID().String()] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d kept /work traces have no log line", missing, len(kept))
	}
	// The kept traces reach the backend.
	if jaeger != nil {
		jaeger.WaitTrace(t, kept[len(kept)/2].TraceID().String(), 1, 20*time.Second)
	}

	// The profile burst: pushed with the anomaly's labels, and kept.
	ups := pyro.WaitFor(t, 20*time.Second, "the anomaly's profile burst", func(ups []testbackend.PyroscopeUpload) bool {
		n := 0
		for _, u := range ups {
			if u.Tags["anomaly_route"] == "/work" && u.Tags["anomaly_kind"] == "latency" {
				n++
			}
		}
		return n == 2
	})
	cpu := false
	for _, u := range ups {
		if u.Tags["anomaly_route"] == "/work" && u.App == "e2e-anomaly.cpu" && u.IsCPU() && u.Tags["service_version"] == "v42" {
			cpu = true
		}
	}
	if !cpu {
		t.Errorf("no CPU burst upload for the anomaly among %d uploads", len(ups))
	}
	var view anomalyView
	waitFor(t, "the burst on /debug/anomalies", func() bool {
		resp, err := http.Get("http://" + o.AdminAddr() + "/debug/anomalies")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		view = anomalyView{}
		_ = json.NewDecoder(resp.Body).Decode(&view)
		return len(view.Profiles) == 1 && view.Profiles[0].CPUBytes > 0
	})
	if len(view.Active) != 1 || view.Active[0].Route != "/work" || view.Profiles[0].Pushed != 2 {
		t.Errorf("/debug/anomalies: %+v", view)
	}

	// Fast again: the anomaly ends, and with it the hook's context.
	slow.Store(false)
	ended := func() (latency bool, all bool) {
		active := map[string]bool{}
		for _, l := range logs.find(t, "anomaly started") {
			active[l["anomaly.id"].(string)] = true
		}
		for _, l := range logs.find(t, "anomaly ended") {
			delete(active, l["anomaly.id"].(string))
			if l["anomaly.kind"] == "latency" && l["route"] == "/work" && l["reason"] == "recovered" {
				latency = true
			}
		}
		return latency, len(active) == 0
	}
	windows = 0
	for latency, all := ended(); !(latency && all) && windows < 60; latency, all = ended() {
		window()
		windows++
	}
	if latency, all := ended(); !latency || !all {
		t.Fatalf("after %d fast windows: latency anomaly ended %v, all ended %v: %v", windows, latency, all, logs.find(t, "anomaly ended"))
	}
	starts = logs.find(t, "anomaly started")
	waitFor(t, "the hooks' contexts to end", func() bool {
		hookMu.Lock()
		defer hookMu.Unlock()
		return len(hookEnded) == len(starts)
	})
	hookMu.Lock()
	for _, st := range starts {
		id := st["anomaly.id"].(string)
		if hookCalls[id] != 1 {
			t.Errorf("hook called %d times for anomaly %s (%s)", hookCalls[id], id, st["anomaly.kind"])
		}
		if a := hookEnded[id]; a.Route != "/work" || a.Version != "v42" || a.Transport != "http_server" || a.Kind != st["anomaly.kind"] {
			t.Errorf("hook got %+v for %v", a, st)
		}
	}
	if len(hookCalls) != len(starts) {
		t.Errorf("hook called for %d anomalies, %d started", len(hookCalls), len(starts))
	}
	hookMu.Unlock()
	for _, st := range starts {
		if st["route"] != "/work" {
			t.Errorf("anomaly on another route: %v", st)
		}
	}
	// With a tail of 0, the route's requests are head-sampled again.
	window()
	n := len(sampledSpans(o, "GET /work"))
	for range 3 {
		window()
	}
	if after := len(sampledSpans(o, "GET /work")); after != n {
		t.Errorf("%d /work traces sampled after the anomaly ended", after-n)
	}
}
func sampledSpans(o *Observer, name string) []trace.SpanContext {
	var out []trace.SpanContext
	for _, s := range o.tracing.Store().Spans() {
		if s.Name() == name && s.SpanContext().IsSampled() {
			out = append(out, s.SpanContext())
		}
	}
	return out
}
