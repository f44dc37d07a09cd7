package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/observekit/observe/internal/metrics"
	"github.com/observekit/observe/internal/testbackend"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel/trace"
)

// promService is a service instrumented with observe, on a real listener,
// whose admin /metrics listens on 127.0.0.1.
type promService struct {
	url       string // the service
	adminAddr string // host:port of /metrics

	mu     sync.Mutex
	traces map[string]bool // trace ids the test sent
}

// promServiceMux is the service's routes: a user lookup failing one time in
// four, an order intake reading its body, a slow route, a panicking one.
func promServiceMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if n, _ := strconv.Atoi(r.PathValue("id")); n%4 == 0 {
			http.Error(w, "backend unavailable", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(`{"name":"ada"}`))
	})
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond)
		_, _ = w.Write([]byte("done"))
	})
	mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) {
		panic("handler bug")
	})
	return mux
}

func startPromService(t *testing.T) *promService {
	t.Helper()
	obs := promInit(t, "127.0.0.1:0")
	srv := httptest.NewServer(middleware.HTTP(promServiceMux()))
	t.Cleanup(srv.Close)
	return &promService{url: srv.URL, adminAddr: obs.AdminAddr(), traces: map[string]bool{}}
}

// send makes one request carrying a sampled traceparent of a new trace and
// returns its status.
func (s *promService) send(t *testing.T, method, path string, body io.Reader) int {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	var tid [16]byte
	var sid [8]byte
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	traceID := hex.EncodeToString(tid[:])
	req.Header.Set("traceparent", "00-"+traceID+"-"+hex.EncodeToString(sid[:])+"-01")
	s.mu.Lock()
	s.traces[traceID] = true
	s.mu.Unlock()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (s *promService) sent(traceID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.traces[traceID]
}

// TestPrometheusIntegration runs a real Prometheus scraping a service that
// uses the middleware, drives traffic (5xx and panics included, plus a
// flood of random paths and odd methods), then asks Prometheus's HTTP API
// what an on-call engineer would: request rate and 5xx ratio by route, p99
// by route, exemplars pointing at the requests sent, a join on target_info,
// and that the flood created no series. A second target serves native
// histograms.
func TestPrometheusIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	testStart := time.Now()
	svc := startPromService(t)

	// The native-histogram target: a Metrics of its own.
	native, err := metrics.New(metrics.Config{NativeHistograms: true, DisableRuntimeCollectors: true})
	if err != nil {
		t.Fatal(err)
	}
	nativeSrv := httptest.NewServer(native.Handler())
	t.Cleanup(nativeSrv.Close)

	prom := testbackend.StartPrometheus(t, testbackend.PrometheusOptions{
		Targets: []testbackend.ScrapeTarget{
			{Job: "observe", Addr: svc.adminAddr},
			{Job: "native", Addr: nativeSrv.Listener.Addr().String()},
		},
		ScrapeInterval: time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	if _, err := prom.Eventually(ctx, 15*time.Second, `sum(up)`, func(s []testbackend.Sample) bool {
		return len(s) == 1 && s[0].Value == 2
	}); err != nil {
		t.Fatalf("targets not up: %v", err)
	}

	// Traffic: three waves a scrape apart, so rates have samples to work on.
	want := map[string]float64{} // route -> requests
	for wave := range 3 {
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() { defer wg.Done(); svc.send(t, "GET", "/slow", nil) }()
		}
		for id := range 40 {
			svc.send(t, "GET", fmt.Sprintf("/users/%d", id), nil)
		}
		for range 10 {
			if st := svc.send(t, "POST", "/orders", strings.NewReader(strings.Repeat("x", 300))); st != http.StatusCreated {
				t.Fatalf("POST /orders: %d", st)
			}
		}
		for range 2 {
			if st := svc.send(t, "GET", "/panic", nil); st != http.StatusInternalServerError {
				t.Fatalf("GET /panic: %d, want 500", st)
			}
		}
		if wave == 1 {
			// 1000 random paths and odd methods: they must create no series.
			for i := range 1000 {
				method := []string{"GET", "BREW", "get", "PROPFIND", "M-SEARCH", "XYZZY" + strconv.Itoa(i)}[i%6]
				svc.send(t, method, "/x/"+strconv.Itoa(i)+"/"+hex.EncodeToString([]byte{byte(i), byte(i >> 8)}), nil)
			}
			want[""] += 1000
		}
		for i := 1; i <= 100; i++ {
			native.HTTPServer.Observe("GET", "/native", 200, time.Duration(i)*time.Millisecond, trace.SpanContext{})
		}
		wg.Wait()
		want["/slow"] += 3
		want["/users/{id}"] += 40
		want["/orders"] += 10
		want["/panic"] += 2
		time.Sleep(1100 * time.Millisecond)
	}

	// Every request is in Prometheus once the last scrape is in.
	if _, err := prom.Eventually(ctx, 15*time.Second,
		`sum by (http_route) (http_server_request_duration_seconds_count{job="observe"})`,
		func(s []testbackend.Sample) bool {
			if len(s) != len(want) {
				return false
			}
			for _, x := range s {
				if x.Value != want[x.Metric["http_route"]] {
					return false
				}
			}
			return true
		}); err != nil {
		t.Fatalf("request counts by route, want %v: %v", want, err)
	}

	q := func(query string) []testbackend.Sample {
		t.Helper()
		s, err := prom.Query(ctx, query)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return s
	}
	byRoute := func(s []testbackend.Sample) map[string]float64 {
		out := map[string]float64{}
		for _, x := range s {
			out[x.Metric["http_route"]] = x.Value
		}
		return out
	}

	// Request rate by route.
	rate := byRoute(q(`sum by (http_route) (rate(http_server_request_duration_seconds_count{job="observe"}[1m]))`))
	for _, route := range []string{"/users/{id}", "/orders", "/slow", "/panic"} {
		if !(rate[route] > 0) {
			t.Errorf("request rate of %s = %v, want > 0 (all: %v)", route, rate[route], rate)
		}
	}
	t.Logf("request rate by route: %v", rate)

	// 5xx error ratio by route: a quarter of user lookups, every panic.
	ratio := byRoute(q(`sum by (http_route) (rate(http_server_request_duration_seconds_count{job="observe",http_response_status_code=~"5.."}[1m]))
		/ sum by (http_route) (rate(http_server_request_duration_seconds_count{job="observe"}[1m]))`))
	if r := ratio["/users/{id}"]; math.Abs(r-0.25) > 0.05 {
		t.Errorf("5xx ratio of /users/{id} = %v, want 0.25", r)
	}
	if r := ratio["/panic"]; r != 1 {
		t.Errorf("5xx ratio of /panic = %v, want 1 (a panic is a 500)", r)
	}
	if _, ok := ratio["/orders"]; ok {
		t.Errorf("/orders has 5xx: %v", ratio)
	}
	t.Logf("5xx ratio by route: %v", ratio)

	// p99 by route.
	p99 := byRoute(q(`histogram_quantile(0.99, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket{job="observe"}[1m])))`))
	if v := p99["/slow"]; !(v > 0.1 && v <= 0.25) {
		t.Errorf("p99 of /slow = %v, want in (0.1, 0.25] (150ms requests)", v)
	}
	if v := p99["/users/{id}"]; !(v > 0 && v <= 0.1) {
		t.Errorf("p99 of /users/{id} = %v, want in (0, 0.1]", v)
	}
	t.Logf("p99 by route: %v", p99)

	// Exemplars point at the requests the test sent.
	ex, err := prom.QueryExemplars(ctx, `http_server_request_duration_seconds_bucket{job="observe"}`, testStart, time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	slowEx := 0
	for _, e := range ex {
		tid, sid := e.Labels["trace_id"], e.Labels["span_id"]
		if !svc.sent(tid) {
			t.Errorf("exemplar trace_id %q (series %v) was not sent by the test", tid, e.Series)
		}
		if len(sid) != 16 {
			t.Errorf("exemplar span_id %q", sid)
		}
		if e.Series["http_route"] == "/slow" {
			slowEx++
			if !(e.Value > 0.1) {
				t.Errorf("exemplar of /slow has value %v", e.Value)
			}
		}
	}
	if len(ex) == 0 || slowEx == 0 {
		t.Errorf("got %d exemplars (%d on /slow), want some on /slow", len(ex), slowEx)
	}
	t.Logf("%d exemplars, all with trace ids the test sent", len(ex))

	// target_info joins: the request rate by service version.
	byVersion := q(`sum by (service_version, deployment_environment) (rate(http_server_request_duration_seconds_count{job="observe"}[1m])
		* on (job, instance) group_left (service_version, deployment_environment) target_info)`)
	if len(byVersion) != 1 || byVersion[0].Metric["service_version"] != "1.2.3" || byVersion[0].Metric["deployment_environment"] != "test" || !(byVersion[0].Value > 0) {
		t.Errorf("join on target_info: %v", byVersion)
	}
	if s := q(`go_build_info{job="observe"}`); len(s) != 1 {
		t.Errorf("go_build_info: %v", s)
	}

	// The flood created no series: routes are templates or "", methods the
	// standard ones or _OTHER, nothing overflowed.
	for _, s := range q(`count by (http_route, http_request_method) (http_server_request_duration_seconds_count{job="observe"})`) {
		if _, ok := want[s.Metric["http_route"]]; !ok {
			t.Errorf("unexpected route label %q", s.Metric["http_route"])
		}
		if m := s.Metric["http_request_method"]; metrics.MethodLabel(m) != m {
			t.Errorf("unexpected method label %q", m)
		}
	}
	if s := q(`count(http_server_request_duration_seconds_count{job="observe"})`); len(s) != 1 || s[0].Value > 12 {
		t.Errorf("series count %v, want at most 12", s)
	}
	if s := q(`sum(observe_metric_overflow_total{job="observe"})`); len(s) != 1 || s[0].Value != 0 {
		t.Errorf("overflow: %v", s)
	}

	// Native histograms: p99 of 1..100ms is about 99ms.
	nat, err := prom.Eventually(ctx, 10*time.Second,
		`histogram_quantile(0.99, sum by (http_route) (rate(http_server_request_duration_seconds{job="native"}[1m])))`,
		func(s []testbackend.Sample) bool { return len(s) == 1 })
	if err != nil {
		t.Fatalf("native histogram quantile: %v", err)
	}
	if v := nat[0].Value; !(v > 0.085 && v < 0.115) {
		t.Errorf("native p99 = %v, want about 0.099", v)
	}
	t.Logf("native-histogram p99: %v", nat[0].Value)
	if d := time.Since(testStart); d > 60*time.Second {
		t.Errorf("took %v, budget 60s", d)
	}
}
