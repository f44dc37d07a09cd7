package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/statuspage"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// statusService is an Observer (admin listener off: AdminHandler is driven
// directly) with a small instrumented service in front.
type statusService struct {
	obs   *observe.Observer
	app   http.Handler
	admin http.Handler
}

func newStatusService(t *testing.T, opts ...observe.Option) *statusService {
	t.Helper()
	reliabEnv(t)
	obs, err := observe.Init(context.Background(), append([]observe.Option{observe.WithServiceName("status-test"), observe.WithLogWriter(io.Discard)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = obs.Shutdown(context.Background()) })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		ctx, span := otel.Tracer("test").Start(r.Context(), "load item")
		slog.InfoContext(ctx, "loading item", "id", r.PathValue("id"))
		span.End()
		if r.PathValue("id") == "bad" {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	return &statusService{obs: obs, app: middleware.HTTP(mux), admin: obs.AdminHandler()}
}

func (s *statusService) hit(path string) {
	req := httptest.NewRequest("GET", path, nil)
	s.app.ServeHTTP(httptest.NewRecorder(), req)
}

// call sends one request to the admin handler from remote (an address, ""
// for loopback) with the given headers.
func (s *statusService) call(method, target, remote string, body string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:50000"
	if remote != "" {
		req.RemoteAddr = remote
	}
	req.Host = "127.0.0.1:9464"
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	s.admin.ServeHTTP(rec, req)
	return rec
}

type traceList struct {
	Traces []struct {
		TraceID  string  `json:"trace_id"`
		Route    string  `json:"route"`
		Status   string  `json:"status"`
		Error    bool    `json:"error"`
		Duration float64 `json:"duration_ms"`
		Spans    int     `json:"spans"`
	} `json:"traces"`
}

func TestStatusAPIs(t *testing.T) {
	s := newStatusService(t)
	for i := range 5 {
		s.hit(fmt.Sprintf("/items/%d", i))
	}
	s.hit("/items/bad")

	rec := s.call("GET", "/debug/traces", "", "")
	if rec.Code != 200 {
		t.Fatalf("GET /debug/traces: %d %s", rec.Code, rec.Body)
	}
	var list traceList
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Traces) != 6 {
		t.Fatalf("%d traces, want 6: %s", len(list.Traces), rec.Body)
	}
	for _, tr := range list.Traces {
		if tr.Route != "/items/{id}" || tr.Spans != 2 {
			t.Fatalf("summary %+v", tr)
		}
	}

	// Filters.
	for q, want := range map[string]int{
		"error=true":           1,
		"status=500":           1,
		"status=5xx":           1,
		"status=2xx":           5,
		"status=200&limit=2":   2,
		"route=/items/{id}":    6,
		"route=/other":         0,
		"min_duration=1h":      0,
		"min_duration=0s":      6,
		"error=false&limit=10": 6,
	} {
		rec := s.call("GET", "/debug/traces?"+(url.Values{}).Encode()+q, "", "")
		var l traceList
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &l) != nil || len(l.Traces) != want {
			t.Errorf("?%s: %d, %d traces, want %d: %s", q, rec.Code, len(l.Traces), want, rec.Body)
		}
	}
	// Bad parameters: 400 naming the parameter.
	for q, name := range map[string]string{
		"limit=0": "limit", "limit=x": "limit", "limit=1001": "limit", "min_duration=-1s": "min_duration",
		"min_duration=10": "min_duration", "error=maybe": "error", "status=600": "status", "status=bad!": "status",
		"route=" + strings.Repeat("x", 600): "route", "colour=red": "colour", "limit=1&limit=2": "limit",
	} {
		rec := s.call("GET", "/debug/traces?"+q, "", "")
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), name) {
			t.Errorf("?%s: %d %s, want 400 naming %s", q, rec.Code, rec.Body, name)
		}
	}

	// One trace, as OTLP/JSON: the official protobuf types decode it.
	var errID string
	for _, tr := range list.Traces {
		if tr.Error {
			errID = tr.TraceID
		}
	}
	rec = s.call("GET", "/debug/traces/"+errID, "", "")
	if rec.Code != 200 {
		t.Fatalf("GET trace: %d %s", rec.Code, rec.Body)
	}
	var req collectortrace.ExportTraceServiceRequest
	if err := protojson.Unmarshal(rec.Body.Bytes(), &req); err != nil {
		t.Fatalf("not OTLP/JSON: %v\n%s", err, rec.Body)
	}
	var names []string
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				names = append(names, sp.Name)
				if sp.Name == "GET /items/{id}" && (sp.Status.GetCode() != 2 || sp.Kind != 2) {
					t.Errorf("server span: status %v kind %v", sp.Status, sp.Kind)
				}
			}
		}
	}
	if len(names) != 2 || !strings.Contains(rec.Body.String(), `"traceId":"`+errID+`"`) {
		t.Fatalf("spans %q; body %s", names, rec.Body)
	}
	for path, code := range map[string]int{
		"/debug/traces/0af7651916cd43dd8448eb211c80319c": 404,
		"/debug/traces/00000000000000000000000000000000": 400,
		"/debug/traces/xyz":               400,
		"/debug/traces/" + errID + "?x=1": 400,
	} {
		if rec := s.call("GET", path, "", ""); rec.Code != code {
			t.Errorf("GET %s: %d, want %d: %s", path, rec.Code, code, rec.Body)
		}
	}

	// Its log lines, as written.
	rec = s.call("GET", "/debug/logs?trace_id="+errID, "", "")
	var lines []string
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &lines) != nil {
		t.Fatalf("GET /debug/logs: %d %s", rec.Code, rec.Body)
	}
	if len(lines) < 2 || !strings.Contains(lines[0], `"msg":"loading item"`) || !strings.Contains(lines[0], `"trace_id":"`+errID+`"`) {
		t.Fatalf("log lines: %q", lines)
	}
	for q, code := range map[string]int{"": 400, "trace_id=1": 400, "trace_id=0af7651916cd43dd8448eb211c80319c": 200, "trace_id=" + errID + "&x=1": 400} {
		if rec := s.call("GET", "/debug/logs?"+q, "", ""); rec.Code != code {
			t.Errorf("GET /debug/logs?%s: %d, want %d", q, rec.Code, code)
		}
	}

	// The RED table and the status document answer JSON.
	for _, p := range []string{"/debug/red", "/debug/status"} {
		rec := s.call("GET", p, "", "")
		if rec.Code != 200 || !json.Valid(rec.Body.Bytes()) {
			t.Errorf("GET %s: %d %s", p, rec.Code, rec.Body)
		}
	}
}

// Without a token: loopback only, and a loopback request naming a host
// other than an IP address or localhost (DNS rebinding) is refused.
func TestStatusAccessWithoutToken(t *testing.T) {
	s := newStatusService(t)
	for _, p := range []string{"/", "/debug/traces", "/debug/red", "/debug/status", "/debug/logs?trace_id=0af7651916cd43dd8448eb211c80319c"} {
		if rec := s.call("GET", p, "", ""); rec.Code != 200 {
			t.Errorf("loopback GET %s: %d", p, rec.Code)
		}
		if rec := s.call("GET", p, "203.0.113.9:4000", ""); rec.Code != 403 {
			t.Errorf("remote GET %s: %d, want 403", p, rec.Code)
		}
		req := httptest.NewRequest("GET", p, nil)
		req.RemoteAddr, req.Host = "127.0.0.1:5000", "attacker.example:9464"
		rec := httptest.NewRecorder()
		s.admin.ServeHTTP(rec, req)
		if rec.Code != 403 {
			t.Errorf("GET %s with Host attacker.example: %d, want 403", p, rec.Code)
		}
	}
	// A program's PUT (no Origin, no Sec-Fetch-Site) needs nothing more; a
	// browser's needs the page's CSRF token.
	if rec := s.call("PUT", "/loglevel", "", `{"level":"debug","logger":"a"}`); rec.Code != 200 {
		t.Fatalf("curl-like PUT: %d %s", rec.Code, rec.Body)
	}
	if rec := s.call("PUT", "/loglevel", "", `{"level":"debug","logger":"b"}`, "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"); rec.Code != 403 {
		t.Fatalf("browser PUT without CSRF: %d %s", rec.Code, rec.Body)
	}
	csrf := csrfFromPage(t, s.call("GET", "/", "", "").Body.String())
	if rec := s.call("PUT", "/loglevel", "", `{"level":"debug","logger":"c"}`, "Origin", "http://127.0.0.1:9464", "X-CSRF-Token", csrf); rec.Code != 200 {
		t.Fatalf("page PUT with CSRF: %d %s", rec.Code, rec.Body)
	}
	// The page's headers.
	rec := s.call("GET", "/", "", "")
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	if rec := s.call("GET", "/static/app.js", "", ""); rec.Code != 200 || !strings.Contains(rec.Header().Get("Content-Type"), "javascript") {
		t.Errorf("app.js: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec := s.call("GET", "/static/../admin.go", "", ""); rec.Code == 200 {
		t.Errorf("static escapes its directory")
	}
}

func csrfFromPage(t *testing.T, page string) string {
	t.Helper()
	const marker = `<meta name="csrf-token" content="`
	i := strings.Index(page, marker)
	if i < 0 {
		t.Fatalf("no CSRF token in the page")
	}
	rest := page[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

// With a token: bearer or the session cookie; the sign-in form sets a
// cookie that is HttpOnly, SameSite=Strict and not the token; a change with
// the cookie needs the CSRF token; /metrics and the probes stay open.
func TestStatusAccessWithToken(t *testing.T) {
	const token = "s3cret-admin-token-for-status"
	s := newStatusService(t, observe.WithAdminToken(token))
	for _, p := range []string{"/debug/traces", "/debug/red", "/debug/status", "/debug/logs?trace_id=0af7651916cd43dd8448eb211c80319c", "/debug/traces/0af7651916cd43dd8448eb211c80319c"} {
		if rec := s.call("GET", p, "", ""); rec.Code != 401 {
			t.Errorf("GET %s without token: %d", p, rec.Code)
		}
		if rec := s.call("GET", p, "203.0.113.9:4000", "", "Authorization", "Bearer "+token); rec.Code == 401 || rec.Code == 403 {
			t.Errorf("GET %s with the token: %d", p, rec.Code)
		}
	}
	for _, p := range []string{"/metrics", "/livez", "/readyz", "/loglevel"} {
		if rec := s.call("GET", p, "203.0.113.9:4000", ""); rec.Code != 200 {
			t.Errorf("open GET %s: %d", p, rec.Code)
		}
	}
	rec := s.call("GET", "/", "", "")
	if rec.Code != 401 || !strings.Contains(rec.Body.String(), `name="token"`) {
		t.Fatalf("page without token: %d, want the sign-in form", rec.Code)
	}
	if rec := s.call("POST", "/signin", "", "token=wrong", "Content-Type", "application/x-www-form-urlencoded"); rec.Code != 401 || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("wrong token: %d %v", rec.Code, rec.Result().Cookies())
	}
	if rec := s.call("POST", "/signin", "", "token="+token, "Content-Type", "application/x-www-form-urlencoded", "Origin", "http://evil.example"); rec.Code != 403 {
		t.Fatalf("cross-origin sign-in: %d", rec.Code)
	}
	rec = s.call("POST", "/signin", "", "token="+url.QueryEscape(token), "Content-Type", "application/x-www-form-urlencoded")
	cookies := rec.Result().Cookies()
	if rec.Code != 303 || len(cookies) != 1 {
		t.Fatalf("sign-in: %d %v", rec.Code, cookies)
	}
	c := cookies[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || strings.Contains(c.Value, token) || c.Value == "" {
		t.Fatalf("session cookie %+v", c)
	}
	cookie := c.Name + "=" + c.Value
	rec = s.call("GET", "/", "", "", "Cookie", cookie)
	if rec.Code != 200 {
		t.Fatalf("page with the cookie: %d", rec.Code)
	}
	csrf := csrfFromPage(t, rec.Body.String())
	if rec := s.call("GET", "/debug/traces", "203.0.113.9:4000", "", "Cookie", cookie); rec.Code != 200 {
		t.Fatalf("API with the cookie: %d", rec.Code)
	}
	if rec := s.call("GET", "/debug/traces", "", "", "Cookie", c.Name+"=forged"); rec.Code != 401 {
		t.Fatalf("API with a forged cookie: %d", rec.Code)
	}
	if rec := s.call("PUT", "/loglevel", "", `{"level":"debug"}`, "Cookie", cookie); rec.Code != 403 {
		t.Fatalf("PUT with the cookie, no CSRF: %d", rec.Code)
	}
	if rec := s.call("PUT", "/loglevel", "", `{"level":"debug"}`, "Cookie", cookie, "X-CSRF-Token", "forged"); rec.Code != 403 {
		t.Fatalf("PUT with the cookie, forged CSRF: %d", rec.Code)
	}
	if rec := s.call("PUT", "/loglevel", "", `{"level":"debug"}`, "Cookie", cookie, "X-CSRF-Token", csrf); rec.Code != 200 {
		t.Fatalf("PUT with the cookie and CSRF: %d %s", rec.Code, rec.Body)
	}
	if rec := s.call("PUT", "/loglevel", "203.0.113.9:4000", `{"level":"info"}`, "Authorization", "Bearer "+token); rec.Code != 200 {
		t.Fatalf("PUT with the bearer token: %d", rec.Code)
	}
	if rec := s.call("PUT", "/loglevel", "", `{"level":"info"}`); rec.Code != 401 {
		t.Fatalf("PUT with nothing: %d", rec.Code)
	}
}

// Mounted under a prefix: the page, its assets and the APIs all work, a
// request for the prefix without its slash is redirected, the cookie is
// scoped to the prefix.
func TestStatusUnderPrefix(t *testing.T) {
	const token = "prefix-token-123456"
	s := newStatusService(t, observe.WithAdminToken(token))
	s.hit("/items/1")
	mux := http.NewServeMux()
	mux.Handle("/ops/", http.StripPrefix("/ops", s.obs.AdminHandler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.URL + "/ops")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// /ops is not under the /ops/ pattern's subtree for StripPrefix: the
	// mux redirects it, as net/http does.
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/ops/" {
		t.Fatalf("GET /ops: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = client.PostForm(srv.URL+"/ops/signin", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cs := resp.Cookies()
	if resp.StatusCode != 303 || len(cs) != 1 || cs[0].Path != "/ops/" || resp.Header.Get("Location") != "./" {
		t.Fatalf("sign-in under /ops: %d %v %s", resp.StatusCode, cs, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/ops/", "/ops/static/app.js", "/ops/static/style.css", "/ops/debug/traces", "/ops/debug/red"} {
		req, _ := http.NewRequest("GET", srv.URL+p, nil)
		req.AddCookie(cs[0])
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d %s", p, resp.StatusCode, b)
		}
		if p == "/ops/" && (!strings.Contains(string(b), `href="static/style.css"`) || strings.Contains(string(b), `"/static`)) {
			t.Errorf("the page's links are not relative")
		}
	}
}

// The page is light: every embedded asset together under 150 KB.
func TestStatusPageWeight(t *testing.T) {
	if n := statuspage.Size(); n > 150<<10 || n < 10<<10 {
		t.Fatalf("embedded assets weigh %d bytes", n)
	}
	t.Logf("embedded assets: %d bytes", statuspage.Size())
}

func TestStatusURL(t *testing.T) {
	reliabEnv(t)
	for addr, prefix := range map[string]string{":0": "http://127.0.0.1:", "127.0.0.1:0": "http://127.0.0.1:", "[::1]:0": "http://[::1]:"} {
		obs, err := observe.Init(context.Background(), observe.WithAdminAddr(addr), observe.WithLogWriter(io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		u := obs.StatusURL()
		_ = obs.Shutdown(context.Background())
		if !strings.HasPrefix(u, prefix) || !strings.HasSuffix(u, "/") {
			t.Errorf("%s: StatusURL %q", addr, u)
		}
	}
	obs, err := observe.Init(context.Background(), observe.WithAdminAddr("off"), observe.WithLogWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Shutdown(context.Background())
	if u := obs.StatusURL(); u != "" {
		t.Errorf("admin off: StatusURL %q", u)
	}
}
