package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/testbackend"
	"github.com/observekit/observe/middleware"
)

// Recognizable secrets, each in every form it could leak in.
const (
	secAdminToken = "admtok-Q7x1Z9pLm3Kd"
	secOTLPBearer = "hdrsec-V5n2R8kW4cYq"
	secOTLPAPIKey = "apikey-T3m8P1sN6wBe"
	secPyroPass   = "pyrpass-J6t3Y1uB8eHs"
	secURLPass    = "urlpass-D4k9F2hQ7rLz" // user info in an OTLP endpoint URL
)

func secretForms() map[string]string {
	forms := map[string]string{}
	for _, s := range []string{secAdminToken, secOTLPBearer, secOTLPAPIKey, secPyroPass, secURLPass} {
		forms[s] = s
		// The distinctive tail, should a prefix be cut off or masked.
		forms[s+" (tail)"] = s[len(s)-10:]
		forms[s+" (base64)"] = base64.StdEncoding.EncodeToString([]byte(s))
	}
	forms["pyroscope basic auth"] = base64.StdEncoding.EncodeToString([]byte("pyrouser:" + secPyroPass))
	forms["otlp url basic auth"] = base64.StdEncoding.EncodeToString([]byte("otlpuser:" + secURLPass))
	return forms
}

// leakScanner collects everything the outside world could see.
type leakScanner struct {
	mu    sync.Mutex
	parts map[string]*strings.Builder
}

func (l *leakScanner) add(where, s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.parts == nil {
		l.parts = map[string]*strings.Builder{}
	}
	b := l.parts[where]
	if b == nil {
		b = &strings.Builder{}
		l.parts[where] = b
	}
	b.WriteString(s)
	b.WriteByte('\n')
}

func (l *leakScanner) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for where, b := range l.parts {
		text := b.String()
		for name, form := range secretForms() {
			if i := strings.Index(text, form); i >= 0 {
				lo, hi := max(0, i-200), min(len(text), i+len(form)+100)
				t.Errorf("secret %s appears in %s: …%s…", name, where, text[lo:hi])
			}
		}
	}
}

// captureStderr sends file descriptor 2 (the Go log package, OpenTelemetry's
// and gRPC's default loggers, a runtime panic) to a file until stop.
func captureStderr(t *testing.T) (stop func() string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	saved, err := syscall.Dup(2)
	if err != nil {
		t.Skipf("dup: %v", err)
	}
	if err := syscall.Dup3(int(f.Fd()), 2, 0); err != nil {
		syscall.Close(saved)
		t.Skipf("dup3: %v", err)
	}
	var once sync.Once
	stop = func() string {
		once.Do(func() {
			_ = syscall.Dup3(saved, 2, 0)
			syscall.Close(saved)
		})
		b, _ := os.ReadFile(f.Name())
		f.Close()
		return string(b)
	}
	t.Cleanup(func() { stop() })
	return stop
}

// No secret ever appears in an Init error.
func TestSecurityInitErrorsNeverEchoSecrets(t *testing.T) {
	var scan leakScanner
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	badHeaders := []string{
		"Authorization=Bearer%20" + secOTLPBearer + ",broken",
		"x-api-key=%zz" + secOTLPAPIKey,
		"x-api-key=" + secOTLPAPIKey + "%0d%0aX-Injected=1",
		"Authorization Bearer " + secOTLPBearer,
		secOTLPAPIKey,
		"x:y=" + secOTLPAPIKey,
	}
	var cases []map[string]string
	for _, v := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_METRICS_HEADERS", "OTEL_EXPORTER_OTLP_LOGS_HEADERS"} {
		for _, h := range badHeaders {
			cases = append(cases, map[string]string{v: h})
		}
	}
	withSecrets := map[string]string{
		"OBSERVE_ADMIN_TOKEN":           secAdminToken,
		"OTEL_EXPORTER_OTLP_HEADERS":    "Authorization=Bearer%20" + secOTLPBearer,
		"PYROSCOPE_BASIC_AUTH_USER":     "pyrouser",
		"PYROSCOPE_BASIC_AUTH_PASSWORD": secPyroPass,
	}
	for _, bad := range []map[string]string{
		{"OBSERVE_ADMIN_ADDR": ln.Addr().String()},
		{"OBSERVE_LOG_LEVEL": "loud"},
		{"PYROSCOPE_SERVER_ADDRESS": "pyroscope:4040"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otlpuser:" + secURLPass + "@bad host:4318"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://otlpuser:" + secURLPass + "@collector:4318/v1/traces"},
		{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "otlpuser:" + secURLPass + "@collector:4318"},
		{"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://otlpuser:" + secURLPass + "@[::1"},
		{"PYROSCOPE_SERVER_ADDRESS": "pyroscope://pyrouser:" + secPyroPass + "@host"},
		{"OBSERVE_REDACT_HASH_KEY": "short"},
		{"OBSERVE_ADMIN_TOKEN": secAdminToken, "OBSERVE_ADMIN_ADDR": "nowhere"},
	} {
		env := map[string]string{}
		for k, v := range withSecrets {
			env[k] = v
		}
		for k, v := range bad {
			env[k] = v
		}
		cases = append(cases, env)
	}
	for _, env := range cases {
		reliabEnv(t)
		t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
		t.Setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "")
		for k, v := range env {
			t.Setenv(k, v)
		}
		logs := &logsBuffer{}
		obs, err := observe.Init(context.Background(), observe.WithLogWriter(logs))
		if err == nil {
			_ = obs.Shutdown(context.Background())
			t.Errorf("Init accepted %v", env)
			continue
		}
		var ce *observe.ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%v: not a *ConfigError: %v", env, err)
		}
		scan.add("Init error", err.Error())
		for e := range joined(err) {
			var ce *observe.ConfigError
			if errors.As(e, &ce) {
				scan.add("ConfigError.Value", ce.Value)
			}
		}
		scan.add("log lines", logs.String())
	}
	scan.check(t)
}

// joined yields err and every error joined or wrapped in it.
func joined(err error) func(func(error) bool) {
	return func(yield func(error) bool) {
		var walk func(error) bool
		walk = func(e error) bool {
			if e == nil {
				return true
			}
			if !yield(e) {
				return false
			}
			switch u := e.(type) {
			case interface{ Unwrap() []error }:
				for _, x := range u.Unwrap() {
					if !walk(x) {
						return false
					}
				}
			case interface{ Unwrap() error }:
				return walk(u.Unwrap())
			}
			return true
		}
		walk(err)
	}
}

// A running service with every secret configured, every backend failing,
// logging at DEBUG: no response, log line, stderr line or error carries a
// secret.
func TestSecuritySecretsNeverLeakAtRuntime(t *testing.T) {
	for _, proto := range []string{"http/protobuf", "grpc"} {
		t.Run(proto, func(t *testing.T) { runSecretScenario(t, proto) })
	}
}

func runSecretScenario(t *testing.T, proto string) {
	reliabEnv(t)
	fault := testbackend.FaultHTTP500
	if proto == "grpc" {
		fault = testbackend.FaultGRPCUnavailable
	}
	col := testbackend.StartFault(t, fault, proto)
	pyro := testbackend.StartFault(t, testbackend.FaultHTTP500, "http/protobuf")
	endpoint := strings.Replace(col.URL, "http://", "http://otlpuser:"+secURLPass+"@", 1)
	env := map[string]string{
		"OBSERVE_ADMIN_ADDR":            "127.0.0.1:0",
		"OBSERVE_ADMIN_TOKEN":           secAdminToken,
		"OBSERVE_LOG_LEVEL":             "debug",
		"OTEL_EXPORTER_OTLP_ENDPOINT":   endpoint,
		"OTEL_EXPORTER_OTLP_PROTOCOL":   proto,
		"OTEL_EXPORTER_OTLP_HEADERS":    "Authorization=Bearer%20" + secOTLPBearer + ",x-api-key=" + secOTLPAPIKey,
		"OTEL_EXPORTER_OTLP_TIMEOUT":    "300",
		"OTEL_TRACES_EXPORTER":          "otlp",
		"OTEL_METRICS_EXPORTER":         "prometheus,otlp",
		"OTEL_METRIC_EXPORT_INTERVAL":   "100",
		"OTEL_LOGS_EXPORTER":            "otlp",
		"PYROSCOPE_SERVER_ADDRESS":      pyro.URL,
		"PYROSCOPE_BASIC_AUTH_USER":     "pyrouser",
		"PYROSCOPE_BASIC_AUTH_PASSWORD": secPyroPass,
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var scan leakScanner
	logs := &logsBuffer{}
	stopStderr := captureStderr(t)

	obs, err := observe.Init(context.Background(), observe.WithLogWriter(logs), observe.WithProfileUploadInterval(200*time.Millisecond))
	if err != nil {
		stopStderr()
		t.Fatal(err)
	}
	admin := "http://" + obs.AdminAddr()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	do := func(method, url, auth, body string, headers ...string) int {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			scan.add("client errors", err.Error())
			return 0
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var hs strings.Builder
		_ = resp.Header.Write(&hs)
		// What the server sent, not what was asked.
		scan.add("responses", resp.Status+"\n"+hs.String()+string(b))
		return resp.StatusCode
	}

	// The service, with the token sent where an operator would (per-request
	// debug) and where a careless client would.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /work/{id}", func(w http.ResponseWriter, r *http.Request) {
		slog.InfoContext(r.Context(), "work", "id", r.PathValue("id"))
		_, _ = io.WriteString(w, "ok")
	})
	srv := httptest.NewServer(middleware.HTTP(mux))
	defer srv.Close()
	for i := 0; i < 50; i++ {
		do("GET", srv.URL+"/work/1", "", "")
	}
	do("GET", srv.URL+"/work/2", "", "", "X-Observe-Debug", secAdminToken)
	do("GET", srv.URL+"/work/3", "", "", "X-Observe-Debug", secAdminToken+"-wrong")
	do("GET", srv.URL+"/work/4", "Bearer "+secAdminToken, "")
	do("GET", srv.URL+"/work/5?token="+secAdminToken+"&api_key="+secOTLPAPIKey, "", "")

	// Admin endpoints, the right token, wrong ones, bad bodies.
	for _, p := range []string{"/metrics", "/livez", "/readyz", "/startupz", "/loglevel"} {
		do("GET", admin+p, "", "")
	}
	do("GET", admin+"/metrics", "", "", "Accept", "application/openmetrics-text; version=1.0.0")
	bearer := "Bearer " + secAdminToken
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/symbol"} {
		do("GET", admin+p, bearer, "")
	}
	if code := do("PUT", admin+"/loglevel", bearer, `{"level":"debug","logger":"db","ttl":"1m"}`); code != 200 {
		t.Errorf("PUT /loglevel with the token: %d", code)
	}
	if code := do("PUT", admin+"/loglevel", bearer, `{"level":"info"}`); code != 200 {
		t.Errorf("PUT /loglevel with the token: %d", code)
	}
	for _, auth := range []string{
		"Bearer " + secAdminToken + "x", "Bearer " + secAdminToken[:len(secAdminToken)-1], "bearer  " + secAdminToken + " ",
		"Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+secAdminToken)), secAdminToken, "",
	} {
		code := do("PUT", admin+"/loglevel", auth, `{"level":"debug"}`)
		if code != 401 && !(auth == "bearer  "+secAdminToken+" " && code == 200) {
			t.Errorf("PUT /loglevel with Authorization %q: %d, want 401", auth, code)
		}
		do("GET", admin+"/debug/pprof/cmdline", auth, "")
	}
	for _, body := range []string{`{"level":"` + secAdminToken + `"}`, `{"level":"debug","ttl":"` + secAdminToken + `"}`, `{"level":"debug","logger":"` + strings.Repeat("x", 300) + `"}`, `not json ` + secAdminToken} {
		// Echoing what the caller sent back to that caller is not a leak,
		// but it must not reach the logs; keep responses out of this scan.
		req, _ := http.NewRequest("PUT", admin+"/loglevel", strings.NewReader(body))
		req.Header.Set("Authorization", bearer)
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 {
				t.Errorf("PUT /loglevel %s: %d, want 400", body, resp.StatusCode)
			}
		}
	}

	// Wait until every signal's failure has been reported.
	markers := []string{"observe: span export failed", "observe: metrics export failed", "observe: logs export failed", "profile upload failed"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		missing := []string{}
		for _, m := range markers {
			if !strings.Contains(logs.String(), m) {
				missing = append(missing, m)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("failures never reported: %v", missing)
			break
		}
		do("GET", srv.URL+"/work/1", "", "")
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `"msg":"log level changed"`) {
		t.Error("no WARN line for the log level change")
	}
	took, err := shutdownWithin(obs, 2*time.Second)
	if err != nil {
		scan.add("Shutdown error", err.Error())
	}
	if took > 2*time.Second+shutdownSlack {
		t.Errorf("Shutdown took %s", took)
	}
	scan.add("stderr", stopStderr())
	scan.add("log lines", logs.String())
	scan.check(t)
	if t.Failed() || testing.Verbose() {
		var warn []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
				warn = append(warn, l)
			}
		}
		t.Logf("WARN and ERROR lines:\n%s", strings.Join(warn, "\n"))
	}
}

// Admin request bodies are size-limited: a 10 MiB PUT /loglevel is a 400,
// read only up to the limit, and changes nothing; without the token it is
// a 401, the body unread.
func TestSecurityAdminBodyLimit(t *testing.T) {
	reliabEnv(t)
	t.Setenv("OBSERVE_ADMIN_ADDR", "127.0.0.1:0")
	obs, _ := initObs(t, observe.WithAdminToken(secAdminToken))
	admin := "http://" + obs.AdminAddr()
	const size = 10 << 20
	bigBody := func() *countingReader {
		return &countingReader{r: io.MultiReader(strings.NewReader(`{"level":"debug","pad":"`), io.LimitReader(repeatReader('a'), size), strings.NewReader(`"}`))}
	}
	levelNow := func() string {
		rec := httptest.NewRecorder()
		obs.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/loglevel", nil))
		var m struct {
			Level string `json:"level"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return m.Level
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	heapBefore := heapInUse()
	for _, c := range []struct {
		name    string
		auth    string
		chunked bool
		want    int
	}{
		{"token, Content-Length", "Bearer " + secAdminToken, false, 400},
		{"token, chunked", "Bearer " + secAdminToken, true, 400},
		{"no token", "", false, 401},
	} {
		body := bigBody()
		var rd io.Reader = body
		if c.chunked {
			rd = struct{ io.Reader }{body} // unknown length: chunked
		}
		req, _ := http.NewRequest("PUT", admin+"/loglevel", rd)
		if !c.chunked {
			req.ContentLength = int64(size + len(`{"level":"debug","pad":"`) + 2)
		}
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		start := time.Now()
		resp, err := client.Do(req)
		var code int
		var msg []byte
		if err == nil {
			code = resp.StatusCode
			msg, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		// The server may close the connection before the client has sent
		// everything; the status is what counts, when the client got it.
		if err != nil && code == 0 {
			t.Logf("%s: client: %v (sent %d bytes)", c.name, err, body.n())
		} else if code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, code, msg, c.want)
		}
		if lvl := levelNow(); lvl != "info" {
			t.Errorf("%s: level changed to %q", c.name, lvl)
		}
		t.Logf("%s: %d in %s, client sent %d bytes", c.name, code, time.Since(start).Round(time.Millisecond), body.n())
	}
	if growth := mib(heapInUse()) - mib(heapBefore); growth > 8 {
		t.Errorf("live heap grew %.1f MiB over three 10 MiB requests", growth)
	}

	// Straight to the handler: it reads no more than its limit.
	body := bigBody()
	req := httptest.NewRequest("PUT", "/loglevel", body)
	req.Header.Set("Authorization", "Bearer "+secAdminToken)
	req.RemoteAddr = "127.0.0.1:5555"
	rec := httptest.NewRecorder()
	obs.AdminHandler().ServeHTTP(rec, req)
	if rec.Code != 400 {
		t.Errorf("handler: %d %s, want 400", rec.Code, rec.Body.String())
	}
	if body.n() > 1<<20 {
		t.Errorf("handler read %d bytes of a 10 MiB body", body.n())
	}
	if lvl := levelNow(); lvl != "info" {
		t.Errorf("level changed to %q", lvl)
	}
}

type countingReader struct {
	r  io.Reader
	mu sync.Mutex
	c  int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	c.c += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c *countingReader) n() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}
