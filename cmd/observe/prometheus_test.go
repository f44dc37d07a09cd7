package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"gopkg.in/yaml.v3"

	"github.com/observekit/observe"
	"github.com/observekit/observe/cmd/observe/internal/dashboard"
	"github.com/observekit/observe/cmd/observe/internal/rules"
	"github.com/observekit/observe/cmd/observe/internal/spec"
	"github.com/observekit/observe/internal/testbackend"
	"github.com/observekit/observe/middleware"
)

// e2eService is an observe service serving a fraction of 5xx: /work fails
// one request in ten (502), /orders/{id} one in five (500), /hello/{name}
// never. Its admin /metrics is scraped by Prometheus under two jobs, one
// per spec the test loads.
func e2eService(t *testing.T) (base, admin string) {
	t.Helper()
	for _, v := range []string{
		"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
		"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME",
		"OBSERVE_ADMIN_TOKEN", "OBSERVE_NATIVE_HISTOGRAMS", "OBSERVE_METRIC_SERIES_LIMIT", "PYROSCOPE_SERVER_ADDRESS",
	} {
		t.Setenv(v, "")
	}
	t.Setenv("OBSERVE_ADMIN_ADDR", "127.0.0.1:0")
	obs, err := observe.Init(context.Background(),
		observe.WithServiceName("quickstart"),
		observe.WithServiceVersion("1.0.0"),
		observe.WithLogWriter(io.Discard),
		observe.WithAccessLog(false),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := obs.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	var work, orders atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "hello, %s\n", r.PathValue("name")) })
	mux.HandleFunc("GET /work", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		if work.Add(1)%10 == 0 {
			http.Error(w, "upstream timeout", http.StatusBadGateway)
			return
		}
		fmt.Fprintln(w, "done")
	})
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		if orders.Add(1)%5 == 0 {
			http.Error(w, "db down", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "order")
	})
	srv := httptest.NewServer(middleware.HTTP(mux))
	t.Cleanup(srv.Close)
	return srv.URL, obs.AdminAddr()
}

// grpcService serves shop.Checkout with observe's gRPC middleware:
// PlaceOrder fails one call in four with UNAVAILABLE, GetCart never. It
// returns a connection to it.
func grpcService(t *testing.T) *grpc.ClientConn {
	t.Helper()
	var calls atomic.Int64
	handler := func(method string, fail bool) grpc.MethodHandler {
		return func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(context.Context, any) (any, error) {
				if fail && calls.Add(1)%4 == 0 {
					return nil, status.Error(codes.Unavailable, "inventory down")
				}
				return new(emptypb.Empty), nil
			}
			if ic == nil {
				return h(ctx, in)
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{FullMethod: "/shop.Checkout/" + method}, h)
		}
	}
	s := grpc.NewServer(middleware.GRPCServer()...)
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "shop.Checkout",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "PlaceOrder", Handler: handler("PlaceOrder", true)},
			{MethodName: "GetCart", Handler: handler("GetCart", false)},
		},
	}, struct{}{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// traffic sends requests and RPCs until the returned stop is called.
func traffic(t *testing.T, base string, conn *grpc.ClientConn) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 5 * time.Second}
		paths := []string{"/hello/ada", "/work", "/orders/7", "/work", "/orders/8"}
		for i := 0; ctx.Err() == nil; i++ {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+paths[i%len(paths)], nil)
			// A sampled parent: every request is traced and its duration
			// carries an exemplar.
			req.Header.Set("traceparent", fmt.Sprintf("00-%032x-%016x-01", i+1, i+1))
			if resp, err := client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			method := "/shop.Checkout/PlaceOrder"
			if i%2 == 1 {
				method = "/shop.Checkout/GetCart"
			}
			_ = conn.Invoke(ctx, method, new(emptypb.Empty), new(emptypb.Empty))
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// A real Prometheus loads the rules generated from the quickstart's spec,
// burn.yaml and grpc.yaml, scrapes a running observe service serving a
// fraction of 5xx (and of UNAVAILABLE), and evaluates every rule without an error; every recording rule
// and every dashboard panel's query has data, the error ratios are the
// fraction served, the page alert fires on the SLO that is burning and no
// alert fires on the one that is not.
func TestRealPrometheus(t *testing.T) {
	// Registered first, so it runs last: after Prometheus, the service and
	// observe have been shut down by their own cleanups.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	specs := map[string]string{ // job → spec
		"quickstart": "../../examples/quickstart/slo.yaml",
		"checkout":   "testdata/burn.yaml",
		"grpc":       "testdata/grpc.yaml",
	}
	dir := t.TempDir()
	parsed := map[string]*spec.Spec{}
	var ruleFiles []string
	var recorded []rules.Rule
	for job, path := range specs {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := spec.Parse(path, data)
		if err != nil {
			t.Fatal(err)
		}
		if s.Job != job {
			t.Fatalf("%s: job %q, want %q", path, s.Job, job)
		}
		parsed[job] = s
		f := filepath.Join(dir, job+".yml")
		b := generate(t, "rules", "-f", path)
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ruleFiles = append(ruleFiles, f)
		var rf rules.File
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Fatal(err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					recorded = append(recorded, r)
				}
			}
		}
	}

	base, admin := e2eService(t)
	stop := traffic(t, base, grpcService(t))
	defer stop()
	prom := testbackend.StartPrometheus(t, testbackend.PrometheusOptions{
		Targets:   []testbackend.ScrapeTarget{{Job: "quickstart", Addr: admin}, {Job: "checkout", Addr: admin}, {Job: "grpc", Addr: admin}},
		RuleFiles: ruleFiles,
	})
	ctx := context.Background()
	const wait = 60 * time.Second

	// Every recording rule has data (within its own labels).
	for _, r := range recorded {
		q := r.Record + "{" + labelMatchers(r.Labels) + "}"
		if _, err := prom.Eventually(ctx, wait, q, func(s []testbackend.Sample) bool { return len(s) == 1 }); err != nil {
			t.Errorf("recording rule: %v", err)
		}
	}

	// The ratios are what the service serves: /work fails 10%, /orders 20%
	// (the whole service 3 in 25: 12%); latencies are far below the bounds.
	for q, want := range map[string]float64{
		`slo:sli_error:ratio_rate5m{sloth_id="quickstart-availability"}`: 0.12,
		`slo:sli_error:ratio_rate5m{sloth_id="checkout-availability"}`:   0.20,
		`slo:sli_error:ratio_rate5m{sloth_id="checkout-latency"}`:        0,
		`slo:sli_error:ratio_rate5m{sloth_id="checkout-latency-1s"}`:     0,
		`slo:sli_error:ratio_rate5m{sloth_id="quickstart-work-latency"}`: 0,
		`slo:sli_error:ratio_rate5m{sloth_id="shop-place-order"}`:        0.25,
		`slo:sli_error:ratio_rate5m{sloth_id="shop-rpc-latency"}`:        0,
	} {
		if _, err := prom.Eventually(ctx, wait, q, func(s []testbackend.Sample) bool {
			return len(s) == 1 && math.Abs(s[0].Value-want) <= 0.03
		}); err != nil {
			t.Errorf("error ratio: %v", err)
		}
	}

	// Every rule evaluates without an error.
	if err := rulesHealthy(ctx, prom.URL, len(recorded)); err != nil {
		t.Error(err)
	}

	// 12% errors is 24x the quickstart's 0.5% budget: it pages; the 1s
	// latency SLO of checkout is healthy and alerts nothing.
	if _, err := prom.Eventually(ctx, wait, `ALERTS{alertname="QuickstartAvailabilityErrorBudgetBurn",alertstate="firing",severity="page",slo="availability",service="quickstart"}`,
		func(s []testbackend.Sample) bool { return len(s) == 1 }); err != nil {
		t.Errorf("page alert: %v", err)
	}
	if s, err := prom.Query(ctx, `ALERTS{slo="latency-1s"}`); err != nil || len(s) != 0 {
		t.Errorf("healthy SLO alerts: %v %v", s, err)
	}

	// Every dashboard panel query evaluates with data, with Grafana's
	// variables as Grafana would fill them in; the duration queries'
	// series carry exemplars pointing to traces.
	panels, exemplars := 0, 0
	for job, s := range parsed {
		d, err := dashboard.Build(s)
		if err != nil {
			t.Fatal(err)
		}
		qs := dashboard.Queries(d)
		if len(qs) < 20 {
			t.Fatalf("%s: only %d panel queries", job, len(qs))
		}
		for _, q := range qs {
			expr := strings.NewReplacer("$__rate_interval", "1m", "$"+dashboard.RouteVar, ".*", "$"+dashboard.MethodVar, ".*").Replace(q.Expr)
			if _, err := prom.Eventually(ctx, wait, expr, func(s []testbackend.Sample) bool { return len(s) > 0 }); err != nil {
				t.Errorf("%s: panel %q: %v", job, q.Panel, err)
			}
			panels++
			if q.Exemplar {
				exemplars++
				ex, err := prom.QueryExemplars(ctx, expr, time.Now().Add(-5*time.Minute), time.Now())
				if err != nil || len(ex) == 0 || len(ex[0].Labels["trace_id"]) != 32 {
					t.Errorf("%s: panel %q: exemplars %v, %v", job, q.Panel, ex, err)
				}
			}
		}
	}
	t.Logf("%d recording rules and %d panel queries (%d with exemplars) evaluated with data", len(recorded), panels, exemplars)
	stop()
}

func labelMatchers(l map[string]string) string {
	var m []string
	for k, v := range l {
		m = append(m, k+"="+strconv.Quote(v))
	}
	return strings.Join(m, ",")
}

// rulesHealthy waits until Prometheus has evaluated every rule, and says
// which one failed if any did.
func rulesHealthy(ctx context.Context, url string, records int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var body struct {
			Data struct {
				Groups []struct {
					Name  string
					Rules []struct {
						Name, Health, LastError, Type string
						LastEvaluation                time.Time
					}
				}
			}
		}
		resp, err := http.Get(url + "/api/v1/rules")
		if err != nil {
			return err
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var problems []string
		n := 0
		for _, g := range body.Data.Groups {
			for _, r := range g.Rules {
				if r.Type == "recording" {
					n++
				}
				if r.Health != "ok" || r.LastError != "" || r.LastEvaluation.IsZero() {
					problems = append(problems, fmt.Sprintf("%s/%s: health %q %s", g.Name, r.Name, r.Health, r.LastError))
				}
			}
		}
		if len(problems) == 0 && n == records {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rules: %d of %d recording rules loaded; not healthy: %v", n, records, problems)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
