package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe/internal/metrics"
	"github.com/observekit/observe/internal/testbackend"
	"github.com/observekit/observe/internal/wiring"
	"github.com/observekit/observe/middleware"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel"
	otelmetric "go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// promSeries gathers the current metrics and returns the series of name by
// their labels ("k=v,k=v", sorted by name as client_golang does).
func promSeries(t *testing.T, name string) map[string]*dto.Metric {
	t.Helper()
	m := currentMetrics()
	if m == nil {
		t.Fatal("no current metrics")
	}
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.Metric{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mm := range mf.GetMetric() {
			var parts []string
			for _, lp := range mm.GetLabel() {
				parts = append(parts, lp.GetName()+"="+lp.GetValue())
			}
			out[strings.Join(parts, ",")] = mm
		}
	}
	return out
}

func promCount(s map[string]*dto.Metric, key string) uint64 {
	return s[key].GetHistogram().GetSampleCount()
}

func promKeys(s map[string]*dto.Metric) []string {
	var out []string
	for k := range s {
		out = append(out, k)
	}
	return out
}

func promGet(t *testing.T, h http.Handler, method, target string, body io.Reader) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, body))
	return rec.Code
}

// TestPrometheusPromtoolCheckMetrics: what the admin /metrics serves passes
// promtool's lint, and the endpoint negotiates OpenMetrics (with exemplars)
// only when asked.
func TestPrometheusPromtoolCheckMetrics(t *testing.T) {
	obs := promInit(t, "127.0.0.1:0")
	h := middleware.HTTP(promServiceMux())
	for i := range 20 {
		promGet(t, h, "GET", fmt.Sprintf("/users/%d", i), nil)
		promGet(t, h, "POST", "/orders", strings.NewReader("{}"))
	}
	promGet(t, h, "GET", "/panic", nil)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	client := &http.Client{Transport: middleware.Transport(http.DefaultTransport)}
	if resp, err := client.Get(backend.URL); err == nil {
		resp.Body.Close()
	}
	// (promtool wants help text: the user's description becomes it.)
	c, _ := otel.Meter("shop").Int64Counter("orders.placed", otelmetric.WithDescription("Orders placed."))
	c.Add(context.Background(), 1)

	get := func(accept string) (string, []byte) {
		req, _ := http.NewRequest("GET", "http://"+obs.AdminAddr()+"/metrics", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
		}
		return resp.Header.Get("Content-Type"), b
	}
	ct, text := get("")
	if !strings.HasPrefix(ct, "text/plain") || bytes.Contains(text, []byte("trace_id")) {
		t.Errorf("plain scrape: Content-Type %q, exemplars in text: %v", ct, bytes.Contains(text, []byte("trace_id")))
	}
	for _, want := range []string{
		"http_server_request_duration_seconds_bucket{", "http_server_active_requests{",
		"http_server_request_body_size_bytes_bucket{", "http_server_response_body_size_bytes_bucket{",
		"http_client_request_duration_seconds_bucket{", `http_response_status_code="500",http_route="/panic"`,
		"target_info{", `service_version="1.2.3"`, "go_build_info{", "orders_placed_total{",
		"observe_metric_overflow_total{", "observe_spans_dropped_total ", `observe_export_failures_total{signal="traces"}`,
	} {
		if !bytes.Contains(text, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	out, ok := testbackend.CheckMetrics(t, text)
	if !ok || strings.TrimSpace(out) != "" {
		t.Errorf("promtool check metrics:\n%s", out)
	}

	ct, om := get("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
	if !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("OpenMetrics scrape: Content-Type %q", ct)
	}
	if !regexp.MustCompile(`http_server_request_duration_seconds_bucket\{[^}]*\} \d+ # \{(span_id="[0-9a-f]{16}",trace_id="[0-9a-f]{32}"|trace_id="[0-9a-f]{32}",span_id="[0-9a-f]{16}")\} `).Match(om) {
		t.Errorf("no exemplar in the OpenMetrics scrape:\n%s", om)
	}
}

// TestPrometheusMiddlewareFloodNoSeries: 1000 random paths and odd methods
// through the middleware create no series and overflow nothing.
func TestPrometheusMiddlewareFloodNoSeries(t *testing.T) {
	promInit(t, "off")
	h := middleware.HTTP(promServiceMux())
	promGet(t, h, "GET", "/users/1", nil)
	before := currentMetrics().HTTPServer.Series()
	methods := []string{"GET", "POST", "BREW", "get", "PROPFIND", "M-SEARCH", "DELETE"}
	for i := range 1000 {
		path := fmt.Sprintf("/%x/%d/%s", i*7919, i, strings.Repeat("z", i%50))
		promGet(t, h, methods[i%len(methods)], path, nil)
		promGet(t, h, methods[i%len(methods)]+fmt.Sprint(i), "/users/1", nil) // unique odd method, known route
	}
	after := currentMetrics().HTTPServer.Series()
	// At most: route "" × {GET, POST, DELETE, _OTHER} × {404, 405} and
	// /users/{id} × _OTHER × 405.
	if after-before > 9 {
		t.Errorf("the flood added %d series (from %d to %d)", after-before, before, after)
	}
	for k := range promSeries(t, metrics.HTTPServerDuration) {
		if !regexp.MustCompile(`^http_request_method=(GET|POST|DELETE|_OTHER),http_response_status_code=\d{3},http_route=(|/users/\{id\})$`).MatchString(k) {
			t.Errorf("unexpected series %s", k)
		}
	}
	if v := promSeries(t, "observe_metric_overflow_total")["metric="+metrics.HTTPServerDuration].GetCounter().GetValue(); v != 0 {
		t.Errorf("overflow = %v", v)
	}
}

// withContext is a middleware that hands the next handler a copy of the
// request, as auth middlewares do; a ServeMux behind it sets Pattern on the
// copy.
func withContext(next http.Handler) http.Handler {
	type key struct{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key{}, "user")))
	})
}

// TestPrometheusMiddlewareRoutes: the route is the ServeMux pattern, what a
// router reports, and never the raw path, even when a WithContext in
// between hides the pattern.
func TestPrometheusMiddlewareRoutes(t *testing.T) {
	promInit(t, "off")
	ok := func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }
	mux := func(pattern string) *http.ServeMux {
		m := http.NewServeMux()
		m.HandleFunc(pattern, ok)
		return m
	}
	promGet(t, middleware.HTTP(mux("GET example.com/direct/{id}")), "GET", "http://example.com/direct/42", nil)
	promGet(t, middleware.HTTP(withContext(mux("GET /lost/{id}"))), "GET", "/lost/42", nil)
	promGet(t, middleware.HTTP(withContext(middleware.RoutePattern(mux("GET /kept/{id}")))), "GET", "/kept/42", nil)
	promGet(t, middleware.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		middleware.SetRoute(r.Context(), "/reported/{id}")
		ok(w, r)
	})), "GET", "/reported/42", nil)
	// A router with a middleware chain, reporting through RouteFrom.
	router := middleware.RouteFrom(func(r *http.Request) string { return "/router/{id}" })(withContext(http.HandlerFunc(ok)))
	promGet(t, middleware.HTTP(withContext(router)), "GET", "/router/42", nil)
	// RouteFrom reports even when the handler panics.
	boom := middleware.RouteFrom(func(r *http.Request) string { return "/boom/{id}" })(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("bug") }))
	if code := promGet(t, middleware.HTTP(boom), "GET", "/boom/1", nil); code != 500 {
		t.Errorf("panic: %d", code)
	}

	// ServeMux answers a CONNECT for "/dirs/7" with a redirect to "/dirs/7/"
	// and reports that raw path as the pattern: it must not become a route.
	dirs := http.NewServeMux()
	dirs.HandleFunc("/dirs/{id}/", ok)
	for i := range 50 {
		promGet(t, middleware.HTTP(dirs), "CONNECT", fmt.Sprintf("/dirs/%d", 1000+i), nil)
		promGet(t, middleware.HTTP(withContext(middleware.RoutePattern(dirs))), "CONNECT", fmt.Sprintf("/dirs/%d", 2000+i), nil)
		promGet(t, middleware.HTTP(withContext(dirs)), "CONNECT", fmt.Sprintf("/dirs/%d", 3000+i), nil)
	}

	s := promSeries(t, metrics.HTTPServerDuration)
	if n := promCount(s, "http_request_method=CONNECT,http_response_status_code=307,http_route="); n != 150 {
		t.Errorf("CONNECT redirects under route \"\": %d, want 150; series %v", n, promKeys(s))
	}
	for k := range s {
		if strings.Contains(k, "/dirs/") {
			t.Errorf("a raw path became a route: %s", k)
		}
	}
	for _, route := range []string{"/direct/{id}", "", "/kept/{id}", "/reported/{id}", "/router/{id}"} {
		if promCount(s, "http_request_method=GET,http_response_status_code=200,http_route="+route) != 1 {
			t.Errorf("route %q not recorded once; series: %v", route, promKeys(s))
		}
	}
	if promCount(s, "http_request_method=GET,http_response_status_code=500,http_route=/boom/{id}") != 1 {
		t.Errorf("panicking route not recorded as a 500: %v", promKeys(s))
	}
	for k := range s {
		if strings.Contains(k, "42") {
			t.Errorf("a raw path became a label: %s", k)
		}
	}
}

// TestPrometheusMiddlewareBodySizes: request sizes from Content-Length, or
// counted as the handler reads a body of unknown length; response sizes as
// written.
func TestPrometheusMiddlewareBodySizes(t *testing.T) {
	promInit(t, "off")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		_, _ = fmt.Fprintf(w, "%012d", n) // 12 bytes
	})
	srv := httptest.NewServer(middleware.HTTP(mux))
	defer srv.Close()
	post := func(body io.Reader) {
		resp, err := http.Post(srv.URL+"/upload", "application/octet-stream", body)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	post(strings.NewReader(strings.Repeat("a", 1000)))                         // Content-Length: 1000
	post(io.MultiReader(strings.NewReader(strings.Repeat("b", 5000))))         // chunked: counted
	post(io.LimitReader(strings.NewReader(strings.Repeat("c", 70000)), 70000)) // chunked, several reads

	const key = "http_request_method=POST,http_response_status_code=200,http_route=/upload"
	req := promSeries(t, "http_server_request_body_size_bytes")[key].GetHistogram()
	resp := promSeries(t, "http_server_response_body_size_bytes")[key].GetHistogram()
	if req.GetSampleCount() != 3 || req.GetSampleSum() != 76000 {
		t.Errorf("request sizes: count %d sum %v, want 3 and 76000", req.GetSampleCount(), req.GetSampleSum())
	}
	if resp.GetSampleCount() != 3 || resp.GetSampleSum() != 36 {
		t.Errorf("response sizes: count %d sum %v, want 3 and 36", resp.GetSampleCount(), resp.GetSampleSum())
	}
}

// TestPrometheusClientCanceledApartFromServerErrors: a client request that
// is canceled gets http_response_status_code="", a 5xx the server answered
// keeps its code.
func TestPrometheusClientCanceledApartFromServerErrors(t *testing.T) {
	promInit(t, "off")
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	defer close(release)
	client := &http.Client{Transport: middleware.Transport(http.DefaultTransport)}

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/hang", nil)
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := client.Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled request: %v", err)
	}
	resp, err := client.Get(srv.URL + "/down")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	s := promSeries(t, "http_client_request_duration_seconds")
	if promCount(s, "http_request_method=GET,http_response_status_code=,server_address=127.0.0.1") != 1 {
		t.Errorf("canceled request not recorded with an empty status: %v", promKeys(s))
	}
	if promCount(s, "http_request_method=GET,http_response_status_code=503,server_address=127.0.0.1") != 1 {
		t.Errorf("503 not recorded: %v", promKeys(s))
	}
}

// cannedTransport answers every request itself.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: http.NoBody, ContentLength: 0, Request: r, Header: http.Header{}}, nil
}

// TestPrometheusClientServerAddressCap: requests to ever new hosts (a
// crawler, say) stay under the series cap.
func TestPrometheusClientServerAddressCap(t *testing.T) {
	promInit(t, "off", observeSeriesLimit(10))
	client := &http.Client{Transport: middleware.Transport(cannedTransport{})}
	for i := range 200 {
		resp, err := client.Get(fmt.Sprintf("http://host%d.example.com/", i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	s := promSeries(t, "http_client_request_duration_seconds")
	if len(s) != 11 {
		t.Errorf("%d series, want 11 (the cap and _OTHER): %v", len(s), promKeys(s))
	}
	if promCount(s, "http_request_method=GET,http_response_status_code=200,server_address=_OTHER") != 190 {
		t.Errorf("_OTHER server_address: %v", promKeys(s))
	}
	if v := promSeries(t, "observe_metric_overflow_total")["metric="+"http_client_request_duration_seconds"].GetCounter().GetValue(); v != 190 {
		t.Errorf("overflow = %v, want 190", v)
	}
}

// panickerDesc is a gRPC service with one method that panics.
var panickerDesc = grpc.ServiceDesc{
	ServiceName: "test.Panicker",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Panic",
		Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(context.Context, any) (any, error) { panic("handler bug") }
			if ic == nil {
				return h(ctx, in)
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Panicker/Panic"}, h)
		},
	}},
}

// TestPrometheusGRPCBounded: 1000 calls to methods the server does not
// serve are one _OTHER series; a panic is INTERNAL.
func TestPrometheusGRPCBounded(t *testing.T) {
	promInit(t, "off")
	srv := grpc.NewServer(middleware.GRPCServer()...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	srv.RegisterService(&panickerDesc, struct{}{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Invoke(ctx, "/test.Panicker/Panic", &emptypb.Empty{}, &emptypb.Empty{}); status.Code(err) != codes.Internal {
		t.Fatalf("panic: %v, want INTERNAL", err)
	}
	for i := range 1000 {
		err := conn.Invoke(ctx, fmt.Sprintf("/scan.Service%d/Method%d", i, i), &emptypb.Empty{}, &emptypb.Empty{})
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("unknown method: %v", err)
		}
	}
	// The server's stats handler records after the client has its answer.
	deadline := time.Now().Add(5 * time.Second)
	const other = "rpc_method=_OTHER,rpc_response_status_code=UNIMPLEMENTED,rpc_system_name=grpc"
	for time.Now().Before(deadline) && promCount(promSeries(t, "rpc_server_call_duration_seconds"), other) < 1000 {
		time.Sleep(10 * time.Millisecond)
	}
	s := promSeries(t, "rpc_server_call_duration_seconds")
	if n := promCount(s, other); n != 1000 {
		t.Errorf("_OTHER holds %d calls, want 1000; series %v", n, promKeys(s))
	}
	if promCount(s, "rpc_method=grpc.health.v1.Health/Check,rpc_response_status_code=OK,rpc_system_name=grpc") != 1 {
		t.Errorf("served method missing: %v", promKeys(s))
	}
	if promCount(s, "rpc_method=test.Panicker/Panic,rpc_response_status_code=INTERNAL,rpc_system_name=grpc") != 1 {
		t.Errorf("panic not recorded as INTERNAL: %v", promKeys(s))
	}
	if len(s) != 3 {
		t.Errorf("%d series, want 3: %v", len(s), promKeys(s))
	}
}

// currentMetrics returns the metrics of the latest observe.Init.
func currentMetrics() *metrics.Metrics {
	m, _ := wiring.Metrics.Load().(*metrics.Metrics)
	return m
}
