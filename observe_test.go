package observe_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/internal/testbackend"
	"github.com/observekit/observe/middleware"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// net/http keeps idle client connections' goroutines until closed;
		// tests close them, but the transport may still be winding down.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct{ testbackend.LockedBuffer }

func (s *syncBuffer) Lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// cleanEnv clears every variable Init reads so tests start from defaults.
func cleanEnv(t *testing.T) {
	for _, v := range []string{
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_PROPAGATORS",
		"OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER", "OBSERVE_ADMIN_ADDR", "OBSERVE_ADMIN_TOKEN",
		"OBSERVE_DEBUG_TOKEN", "OBSERVE_LOG_LEVEL", "OBSERVE_LOG_FORMAT", "OBSERVE_REDACT_KEYS", "OBSERVE_ACCESS_LOG",
		"OBSERVE_LOG_BUFFER", "OBSERVE_DRAIN_DELAY", "KUBERNETES_SERVICE_HOST",
		"PYROSCOPE_SERVER_ADDRESS", "PYROSCOPE_BASIC_AUTH_USER", "PYROSCOPE_BASIC_AUTH_PASSWORD",
	} {
		t.Setenv(v, "")
	}
	t.Setenv("OBSERVE_ADMIN_ADDR", "127.0.0.1:0")
}

func initObs(t *testing.T, opts ...observe.Option) (*observe.Observer, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	opts = append([]observe.Option{observe.WithServiceName("svc"), observe.WithServiceVersion("1.2.3"),
		observe.WithEnvironment("test"), observe.WithLogWriter(logs), observe.WithAccessLog(false)}, opts...)
	obs, err := observe.Init(context.Background(), opts...)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := obs.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return obs, logs
}

func TestInitRejectsMalformedVariables(t *testing.T) {
	cases := []struct{ name, value string }{
		{"OTEL_SDK_DISABLED", "maybe"},
		{"OTEL_TRACES_EXPORTER", "jaeger"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "not a url"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "smoke-signals"},
		{"OTEL_EXPORTER_OTLP_HEADERS", "novalue"},
		{"OTEL_TRACES_SAMPLER", "sometimes"},
		{"OTEL_TRACES_SAMPLER_ARG", "1.5"},
		{"OTEL_PROPAGATORS", "tracecontext,xray"},
		{"OTEL_METRICS_EXPORTER", "statsd"},
		{"OTEL_LOGS_EXPORTER", "syslog"},
		{"OTEL_RESOURCE_ATTRIBUTES", "novalue"},
		{"OBSERVE_ADMIN_ADDR", "nowhere"},
		{"OBSERVE_LOG_LEVEL", "loud"},
		{"OBSERVE_LOG_FORMAT", "xml"},
		{"OBSERVE_ACCESS_LOG", "sometimes"},
		{"OBSERVE_LOG_BUFFER", "sometimes"},
		{"PYROSCOPE_SERVER_ADDRESS", "pyroscope:4040"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cleanEnv(t)
			if c.name == "OTEL_TRACES_SAMPLER_ARG" {
				t.Setenv("OTEL_TRACES_SAMPLER", "traceidratio")
			}
			t.Setenv(c.name, c.value)
			obs, err := observe.Init(context.Background(), observe.WithLogWriter(io.Discard))
			if err == nil {
				_ = obs.Shutdown(context.Background())
				t.Fatalf("Init accepted %s=%q", c.name, c.value)
			}
			var ce *observe.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error is not a *ConfigError: %T %v", err, err)
			}
			if ce.Variable != c.name {
				t.Errorf("error names %q, want %q: %v", ce.Variable, c.name, err)
			}
			if !strings.Contains(err.Error(), c.name) || !strings.Contains(err.Error(), "accepted") {
				t.Errorf("error should name the variable and the accepted values: %v", err)
			}
		})
	}
}

func TestInitNeverEchoesSecretHeaders(t *testing.T) {
	cleanEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer s3cr3t-value,broken")
	_, err := observe.Init(context.Background(), observe.WithLogWriter(io.Discard))
	if err == nil {
		t.Fatal("Init accepted malformed headers")
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error leaks the header value: %v", err)
	}
}

func TestAdminAddrInUseIsAnInitError(t *testing.T) {
	cleanEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("OBSERVE_ADMIN_ADDR", ln.Addr().String())
	_, err = observe.Init(context.Background(), observe.WithLogWriter(io.Discard))
	var ce *observe.ConfigError
	if !errors.As(err, &ce) || ce.Variable != "OBSERVE_ADMIN_ADDR" {
		t.Fatalf("want an OBSERVE_ADMIN_ADDR error, got %v", err)
	}
}

func TestInitShutdownInitAgain(t *testing.T) {
	cleanEnv(t)
	for i := 0; i < 3; i++ {
		logs := &syncBuffer{}
		obs, err := observe.Init(context.Background(), observe.WithLogWriter(logs), observe.WithServiceName("cycle"))
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		resp, err := http.Get("http://" + obs.AdminAddr() + "/livez")
		if err != nil {
			t.Fatalf("cycle %d: admin: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("cycle %d: /livez = %d", i, resp.StatusCode)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := obs.Shutdown(ctx); err != nil {
			t.Fatalf("cycle %d: shutdown: %v", i, err)
		}
		// Idempotent, and safe concurrently.
		var wg sync.WaitGroup
		for j := 0; j < 4; j++ {
			wg.Add(1)
			go func() { defer wg.Done(); _ = obs.Shutdown(ctx) }()
		}
		wg.Wait()
		cancel()
	}
	http.DefaultClient.CloseIdleConnections()
}

// A collector that accepts connections and never answers must not hold
// Shutdown past its deadline.
func TestShutdownHonoursDeadlineWithUnreachableCollector(t *testing.T) {
	for _, proto := range []string{"http/protobuf", "grpc"} {
		t.Run(proto, func(t *testing.T) {
			cleanEnv(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var conns []net.Conn
			var mu sync.Mutex
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					conns = append(conns, c) // blackhole: read nothing, answer nothing
					mu.Unlock()
				}
			}()
			defer func() {
				ln.Close()
				mu.Lock()
				for _, c := range conns {
					c.Close()
				}
				mu.Unlock()
			}()
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", proto)
			start := time.Now()
			obs, err := observe.Init(context.Background(), observe.WithLogWriter(io.Discard))
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("Init took %s: it must not wait on the network", d)
			}
			_, span := obs.Tracer("test").Start(context.Background(), "work")
			span.End()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start = time.Now()
			_ = obs.Shutdown(ctx)
			if d := time.Since(start); d > time.Second {
				t.Fatalf("Shutdown took %s with a 300ms deadline", d)
			}
		})
	}
}

var (
	hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)
	hex16 = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

func TestEndToEndLogLineCarriesIncomingTrace(t *testing.T) {
	cleanEnv(t)
	_, logs := initObs(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		observeLog(r.Context(), "loading user", "user.id", r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(middleware.HTTP(mux))
	defer srv.Close()

	for _, flags := range []string{"01", "00"} {
		traceID := "4bf92f3577b34da6a3ce929d0e0e47" + flags + "" // 30 + 2 = 32 hex
		req, _ := http.NewRequest("GET", srv.URL+"/users/42", nil)
		req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-"+flags)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("status %d", resp.StatusCode)
		}
		var line map[string]any
		for _, l := range logs.Lines(t) {
			if l["msg"] == "loading user" && l["trace_id"] == traceID {
				line = l
			}
		}
		if line == nil {
			t.Fatalf("flags %s: no log line with trace_id %s in:\n%s", flags, traceID, logs.String())
		}
		if !hex16.MatchString(line["span_id"].(string)) || line["span_id"] == "00f067aa0ba902b7" {
			t.Errorf("span_id %v should be the server span's own id", line["span_id"])
		}
		for k, want := range map[string]any{"level": "INFO", "service.name": "svc", "service.version": "1.2.3", "deployment.environment": "test", "user.id": "42"} {
			if line[k] != want {
				t.Errorf("%s = %v, want %v", k, line[k], want)
			}
		}
		ts, err := time.Parse(time.RFC3339Nano, line["time"].(string))
		if err != nil || ts.Location() != time.UTC || !strings.HasSuffix(line["time"].(string), "Z") {
			t.Errorf("time %v is not RFC 3339 UTC", line["time"])
		}
	}
	// Key order: time, level, msg, service fields, trace_id, span_id, attrs.
	// (The first "loading user" line: an earlier test's exporter, stopped by
	// its Shutdown's deadline, may still log its failure through this one.)
	raw := logs.String()
	raw = raw[strings.LastIndexByte(raw[:strings.Index(raw, `"msg":"loading user"`)], '\n')+1:]
	first := raw[:strings.IndexByte(raw, '\n')]
	order := []string{`"time"`, `"level"`, `"msg"`, `"service.name"`, `"service.version"`, `"deployment.environment"`, `"trace_id"`, `"span_id"`, `"user.id"`}
	last := -1
	for _, k := range order {
		i := strings.Index(first, k)
		if i <= last {
			t.Fatalf("key %s out of order in %s", k, first)
		}
		last = i
	}
}

func TestREDHistogramByRouteNeverRawPath(t *testing.T) {
	cleanEnv(t)
	obs, _ := initObs(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {})
	srv := httptest.NewServer(middleware.HTTP(mux))
	defer srv.Close()
	for _, p := range []string{"/users/1", "/users/2", "/users/secret-token-xyz", "/nope/123"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	body := scrape(t, "http://"+obs.AdminAddr()+"/metrics", "")
	want := `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}"} 3`
	if !strings.Contains(body, want) {
		t.Errorf("missing %s in\n%s", want, testbackend.Grep(body, "http_server"))
	}
	if !strings.Contains(body, `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",http_route=""} 1`) {
		t.Errorf("unmatched request should have an empty route:\n%s", testbackend.Grep(body, "http_server"))
	}
	for _, raw := range []string{"/users/1", "secret-token-xyz", "/nope/123"} {
		if strings.Contains(body, raw) {
			t.Errorf("raw path %q became a label value", raw)
		}
	}
	if !strings.Contains(body, `http_server_active_requests{http_request_method="GET"} 0`) {
		t.Errorf("active requests gauge missing or not back to 0:\n%s", testbackend.Grep(body, "active"))
	}
	if !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_cpu_seconds_total") {
		t.Error("runtime and process collectors missing")
	}
	// OpenMetrics with exemplars when asked.
	om := scrape(t, "http://"+obs.AdminAddr()+"/metrics", "application/openmetrics-text; version=1.0.0")
	if !regexp.MustCompile(`http_server_request_duration_seconds_bucket\{[^}]*http_route="/users/\{id\}"[^}]*\} \d+ # \{(span_id="[0-9a-f]{16}",trace_id="[0-9a-f]{32}"|trace_id="[0-9a-f]{32}",span_id="[0-9a-f]{16}")\}`).MatchString(om) {
		t.Errorf("no exemplar with trace_id in OpenMetrics output:\n%s", testbackend.Grep(om, "bucket"))
	}
}

func TestPanicsAreRecordedPerContract(t *testing.T) {
	cleanEnv(t)
	obs, logs := initObs(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boom", func(w http.ResponseWriter, r *http.Request) { panic("kaboom") })
	mux.HandleFunc("GET /late", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		_, _ = w.Write([]byte("partial"))
		panic("late kaboom")
	})
	mux.HandleFunc("GET /abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	srv := httptest.NewUnstartedServer(middleware.HTTP(mux))
	srv.Config.ErrorLog = nil
	srv.Start()
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Errorf("panicking handler: status %d, want 500", resp.StatusCode)
	}
	// A response already begun: the connection is aborted, not completed.
	if resp, err := http.Get(srv.URL + "/late"); err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.ContentLength < 0 {
			// chunked body cut short must error
			t.Errorf("late panic: body read completed cleanly")
		}
	}
	// ErrAbortHandler is re-panicked: net/http aborts the connection.
	if resp, err := http.Get(srv.URL + "/abort"); err == nil {
		resp.Body.Close()
		t.Errorf("ErrAbortHandler: got a response (%d), want an aborted connection", resp.StatusCode)
	}

	var panicLine map[string]any
	for _, l := range logs.Lines(t) {
		if l["level"] == "ERROR" && strings.Contains(l["panic"].(string), "kaboom") {
			panicLine = l
			break
		}
	}
	if panicLine == nil {
		t.Fatalf("no ERROR line for the panic:\n%s", logs.String())
	}
	if !hex32.MatchString(panicLine["trace_id"].(string)) || !strings.Contains(panicLine["stack"].(string), "observe_test") {
		t.Errorf("panic line lacks trace_id or stack: %v", panicLine)
	}
	body := scrape(t, "http://"+obs.AdminAddr()+"/metrics", "")
	for _, route := range []string{"/boom", "/late", "/abort"} {
		want := `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="500",http_route="` + route + `"} 1`
		if !strings.Contains(body, want) {
			t.Errorf("missing %s:\n%s", want, testbackend.Grep(body, "_count"))
		}
	}
	// The panic's span is in error.
	var found bool
	for _, sp := range instance.Of(obs).Tracing.Store().Spans() {
		if sp.Name() == "GET /boom" {
			found = true
			if sp.Status().Code.String() != "Error" {
				t.Errorf("panic span status %v", sp.Status())
			}
		}
	}
	if !found {
		t.Error("no span GET /boom in the store")
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestAdminProtection(t *testing.T) {
	cleanEnv(t)
	body := strings.NewReader(`{"level":"debug"}`)
	t.Run("token", func(t *testing.T) {
		obs, _ := initObs(t, observe.WithAdminToken("letmein"))
		h := obs.AdminHandler()
		for _, c := range []struct {
			auth string
			want int
		}{{"", 401}, {"Bearer wrong", 401}, {"Basic letmein", 401}, {"Bearer letmein", 200}} {
			req := httptest.NewRequest("PUT", "/loglevel", strings.NewReader(`{"level":"debug"}`))
			req.RemoteAddr = "127.0.0.1:1234"
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.want {
				t.Errorf("Authorization %q: %d, want %d", c.auth, rec.Code, c.want)
			}
			if strings.Contains(rec.Body.String(), "letmein") {
				t.Error("response leaks the token")
			}
		}
		req := httptest.NewRequest("GET", "/debug/pprof/cmdline", nil)
		req.RemoteAddr = "10.1.2.3:1234"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 401 {
			t.Errorf("pprof without token: %d, want 401", rec.Code)
		}
	})
	t.Run("loopback", func(t *testing.T) {
		obs, _ := initObs(t)
		h := obs.AdminHandler()
		for _, c := range []struct {
			remote string
			want   int
		}{{"127.0.0.1:5555", 200}, {"[::1]:5555", 200}, {"10.0.0.7:5555", 403}, {"192.168.1.2:80", 403}} {
			req := httptest.NewRequest("GET", "/debug/pprof/cmdline", nil)
			req.RemoteAddr = c.remote
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.want {
				t.Errorf("remote %s: %d, want %d", c.remote, rec.Code, c.want)
			}
		}
		// Open endpoints stay open from anywhere.
		for _, p := range []string{"/metrics", "/livez", "/readyz", "/startupz", "/loglevel"} {
			req := httptest.NewRequest("GET", p, nil)
			req.RemoteAddr = "10.0.0.7:5555"
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				t.Errorf("GET %s from remote: %d", p, rec.Code)
			}
		}
	})
	_ = body
}

func TestHealthEndpoints(t *testing.T) {
	cleanEnv(t)
	obs, _ := initObs(t)
	h := obs.AdminHandler()
	get := func(p string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%s: body is not JSON: %q", p, rec.Body.String())
		}
		return rec.Code, m
	}
	for _, p := range []string{"/livez", "/readyz", "/startupz"} {
		if code, _ := get(p); code != 200 {
			t.Errorf("%s = %d", p, code)
		}
	}
	obs.AddReadinessCheck("db", func(context.Context) error { return errors.New("connection refused") })
	code, m := get("/readyz")
	if code != 503 || m["failed"].(map[string]any)["db"] != "connection refused" {
		t.Errorf("/readyz with failing check: %d %v", code, m)
	}
	obs.AddReadinessCheck("db", func(context.Context) error { panic("check bug") })
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("/readyz with panicking check: %d", code)
	}
}

func TestSDKDisabledStillLogs(t *testing.T) {
	cleanEnv(t)
	t.Setenv("OTEL_SDK_DISABLED", "true")
	obs, logs := initObs(t)
	if instance.Of(obs).Tracing != nil || instance.Of(obs).Metrics != nil {
		t.Fatal("tracing/metrics should be off")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {
		observeLog(r.Context(), "still logging")
	})
	srv := httptest.NewServer(middleware.HTTP(mux))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(logs.String(), `"msg":"still logging"`) {
		t.Fatalf("no log line: %s", logs.String())
	}
	http.DefaultClient.CloseIdleConnections()
}

func scrape(t *testing.T, url, accept string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
