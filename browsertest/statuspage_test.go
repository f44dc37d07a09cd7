package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/observekit/observe"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel"
)

// service is a small instrumented HTTP service with observe's admin
// listener on loopback: fast, slow and failing routes.
type service struct {
	obs   *observe.Observer
	base  string // the service
	admin string // http://127.0.0.1:port (no trailing slash)
	srv   *http.Server
}

func startService(t *testing.T, opts ...observe.Option) *service {
	t.Helper()
	opts = append([]observe.Option{
		observe.WithServiceName("shop"),
		observe.WithServiceVersion("2.3.1"),
		observe.WithEnvironment("test"),
		observe.WithAdminAddr("127.0.0.1:0"),
		observe.WithLogWriter(io.Discard),
	}, opts...)
	obs, err := observe.Init(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		slog.InfoContext(r.Context(), "saying hello", "name", r.PathValue("name"))
		fmt.Fprintln(w, "hello")
	})
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		ctx, span := otel.Tracer("shop").Start(r.Context(), "query orders")
		slog.InfoContext(ctx, "loading orders slowly", "order", r.PathValue("id"))
		time.Sleep(350 * time.Millisecond)
		span.End()
		slog.WarnContext(r.Context(), "orders were slow", "took_ms", 350)
		fmt.Fprintln(w, "orders")
	})
	mux.HandleFunc("GET /report/{id}", func(w http.ResponseWriter, r *http.Request) {
		slog.InfoContext(r.Context(), "rendering report", "report", r.PathValue("id"))
		fmt.Fprintln(w, renderReport(600*time.Millisecond))
	})
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, r *http.Request) {
		slog.ErrorContext(r.Context(), "payment declined")
		http.Error(w, "declined", http.StatusInternalServerError)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &service{obs: obs, base: "http://" + ln.Addr().String(), admin: strings.TrimSuffix(obs.StatusURL(), "/")}
	s.srv = &http.Server{Handler: middleware.HTTP(mux), ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(ctx)
		_ = obs.Shutdown(ctx)
	})
	return s
}

// renderReport is the CPU-bound work of GET /report/{id}: the profile of
// its trace must show it.
//
//go:noinline
func renderReport(d time.Duration) uint64 {
	var x uint64 = 1
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := range 20000 {
			x = x*6364136223846793005 + uint64(i)
		}
	}
	return x
}

func (s *service) traffic(t *testing.T) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			get(t, s.base+fmt.Sprintf("/orders/%d", i), nil)
		}()
	}
	for i := range 20 {
		get(t, s.base+fmt.Sprintf("/hello/user%d", i), nil)
		if i%5 == 0 {
			get(t, s.base+"/fail", nil)
		}
	}
	wg.Wait()
}

func get(t *testing.T, url string, hdr http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// browser starts headless Chromium and collects its console messages.
type browser struct {
	ctx     context.Context
	mu      sync.Mutex
	console []string
	shots   string
}

func chromiumPath(t *testing.T) string {
	p := os.Getenv("OBSERVE_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Chromium at %s (CI=true): apt-get install chromium, or set OBSERVE_CHROMIUM", p)
		}
		t.Skipf("no Chromium at %s: apt-get install chromium, or set OBSERVE_CHROMIUM", p)
	}
	return p
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1440, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	b := &browser{ctx: ctx, shots: os.Getenv("OBSERVE_SCREENSHOTS")}
	if b.shots == "" {
		b.shots = "artifacts"
	}
	if err := os.MkdirAll(b.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, m.Text))
			b.mu.Unlock()
		}
	}()
	return b
}

// noConsoleErrors fails on any console message of type error or warning and
// any uncaught exception, but those naming one of the URL suffixes and
// status codes the test provoked on purpose (allowed: "path status").
func (b *browser) noConsoleErrors(t *testing.T, allowed ...string) {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // let the last messages arrive
	b.mu.Lock()
	defer b.mu.Unlock()
	var bad []string
next:
	for _, m := range b.console {
		for _, a := range allowed {
			path, code, _ := strings.Cut(a, " ")
			if strings.Contains(m, path+":1 Failed to load resource: the server responded with a status of "+code) {
				continue next
			}
		}
		if strings.HasPrefix(m, "error") || strings.HasPrefix(m, "exception") || strings.HasPrefix(m, "warning") || strings.HasPrefix(m, "assert") {
			bad = append(bad, m)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("console errors:\n%s", strings.Join(bad, "\n"))
	}
}

func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot(t, "failed-"+strings.ReplaceAll(what, " ", "-"))
		t.Fatalf("%s: %v", what, err)
	}
}

func run[T any](t *testing.T, b *browser, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func (b *browser) shot(t *testing.T, name string) {
	t.Helper()
	_, _ = chromedp.Run(b.ctx, chromedp.Evaluate[bool](`window.scrollTo(0, 0), true`))
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// waitFor polls a JavaScript condition (the page refreshes every 5 s).
func (b *browser) waitFor(t *testing.T, what, js string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.shot(t, "failed-wait")
			t.Fatalf("waiting for %s: %v (last error %v)", what, js, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// The walk the issue asks for: a service that served traffic; its routes in
// the RED table; the slow route's slowest trace opened from its row; the
// spans in the waterfall and the trace's log lines; a named logger's level
// changed from the page and GET /loglevel reflecting it; no console error.
func TestStatusPageWalkthrough(t *testing.T) {
	s := startService(t)
	b := newBrowser(t)
	s.traffic(t)

	b.do(t, "open the page", chromedp.Navigate(s.admin+"/"))
	// The RED sampler ticks on its interval: rows appear after the first
	// tick that follows the traffic.
	b.waitFor(t, "the routes in the RED table",
		`document.querySelector('#red-table tr[data-route="/orders/{id}"]') !== null &&
		 document.querySelector('#red-table tr[data-route="/hello/{name}"]') !== null &&
		 document.querySelector('#red-table tr[data-route="/fail"]') !== null`, 60*time.Second)
	errCell := run(t, b, "error ratio of /fail", chromedp.Evaluate[string](
		`document.querySelector('#red-table tr[data-route="/fail"] td:nth-child(3)').textContent`))
	if errCell != "100%" {
		t.Errorf("error ratio of /fail: %q, want 100%%", errCell)
	}
	b.waitFor(t, "the slowest-trace link of /orders/{id}", `document.querySelector('#red-table tr[data-route="/orders/{id}"] a.slowest') !== null`, 15*time.Second)
	b.shot(t, "overview")

	// From the RED row to the slow trace.
	b.do(t, "open the slowest trace", chromedp.Click(chromedp.CSS(`#red-table tr[data-route="/orders/{id}"] a.slowest`)))
	b.waitFor(t, "the waterfall", `document.querySelectorAll('#waterfall .span-row').length >= 2`, 10*time.Second)
	names := run(t, b, "span names", chromedp.Evaluate[[]string](`[...document.querySelectorAll('#waterfall .span-row .wf-name')].map(e => e.firstChild.textContent)`))
	if len(names) != 2 || names[0] != "GET /orders/{id}" || names[1] != "query orders" {
		t.Fatalf("waterfall spans: %q", names)
	}
	dur := run(t, b, "trace duration", chromedp.Evaluate[string](`document.querySelector('.trace-head .muted').textContent`))
	if !strings.Contains(dur, "ms") || strings.HasPrefix(dur, "0") || strings.HasPrefix(dur, "1") || strings.HasPrefix(dur, "2") {
		t.Errorf("slow trace duration %q, want ≥ 350 ms", dur)
	}
	logs := run(t, b, "log lines", chromedp.Evaluate[[]string](`[...document.querySelectorAll('#trace-logs .log-line .msg')].map(e => e.textContent)`))
	if !contains(logs, "loading orders slowly") || !contains(logs, "orders were slow") {
		t.Fatalf("log lines of the trace: %q", logs)
	}
	b.shot(t, "trace")

	// The span's attributes, after redaction, in the detail panel.
	b.do(t, "select the child span", chromedp.Click(chromedp.CSS(`#waterfall .span-row:nth-child(3)`)))
	b.waitFor(t, "the detail of the child span", `document.querySelector('#span-detail h2').textContent.includes('query orders')`, 5*time.Second)

	// The list of traces, filtered.
	b.do(t, "open the traces list", chromedp.Navigate(s.admin+"/#/traces?error=true"))
	b.waitFor(t, "the error traces", `document.querySelectorAll('#traces-table tbody tr').length >= 1`, 10*time.Second)
	routes := run(t, b, "routes of the error traces", chromedp.Evaluate[[]string](`[...document.querySelectorAll('#traces-table tbody tr td:nth-child(3)')].map(e => e.textContent)`))
	for _, r := range routes {
		if r != "/fail" {
			t.Fatalf("errors-only list has route %q", r)
		}
	}
	b.shot(t, "traces")

	// Change a named logger's level from the page.
	b.do(t, "open the overview", chromedp.Navigate(s.admin+"/#/"))
	b.waitFor(t, "the level form", `document.getElementById('level-form') !== null`, 10*time.Second)
	b.do(t, "set db.pool to debug",
		chromedp.SendKeys(chromedp.CSS("#level-logger"), "db.pool"),
		chromedp.SetValue(chromedp.CSS("#level-select"), "debug"),
		chromedp.Click(chromedp.CSS("#level-apply")),
	)
	b.waitFor(t, "the change confirmed", `(document.getElementById('level-result')||{}).textContent === 'set db.pool to debug' || document.querySelector('#levels-table tr[data-logger="db.pool"]') !== null`, 10*time.Second)
	code, body := get(t, s.admin+"/loglevel", nil)
	var lv struct {
		Level   string            `json:"level"`
		Loggers map[string]string `json:"loggers"`
	}
	if err := json.Unmarshal(body, &lv); err != nil || code != 200 {
		t.Fatalf("GET /loglevel: %d %s", code, body)
	}
	if lv.Loggers["db.pool"] != "debug" || lv.Level != "info" {
		t.Fatalf("GET /loglevel after the page's change: %s", body)
	}
	b.waitFor(t, "the logger in the table", `document.querySelector('#levels-table tr[data-logger="db.pool"]') !== null`, 10*time.Second)
	b.shot(t, "levels")

	// Dark theme.
	b.do(t, "switch to dark", chromedp.Click(chromedp.CSS("#theme")))
	b.waitFor(t, "the dark theme", `document.documentElement.dataset.theme === 'dark' && getComputedStyle(document.body).backgroundColor === 'rgb(15, 18, 22)'`, 5*time.Second)
	b.shot(t, "overview-dark")
	b.do(t, "back to light", chromedp.Click(chromedp.CSS("#theme")))

	// Links are off here: the trace view's profile request is an honest 404.
	b.noConsoleErrors(t, "/profile?format=json 404")
}

// With span↔profile links on, a slow CPU-bound request's trace view shows
// its profile: the flame graph and top functions name the handler's work,
// with the pprof download and the go tool pprof command; a request that
// spent no CPU shows the empty state instead.
func TestStatusPageTraceProfile(t *testing.T) {
	s := startService(t, observe.WithProfileLinks(true))
	b := newBrowser(t)
	for i := range 2 {
		get(t, s.base+fmt.Sprintf("/report/%d", i), nil)
	}
	get(t, s.base+"/hello/ada", nil)

	b.do(t, "open the report traces", chromedp.Navigate(s.admin+"/#/traces?route=/report/{id}"))
	b.waitFor(t, "the report traces", `document.querySelectorAll('#traces-table tbody tr').length >= 2`, 15*time.Second)
	b.do(t, "open a report trace", chromedp.Click(chromedp.CSS(`#traces-table tbody tr:first-child td:nth-child(2) a`)))
	b.waitFor(t, "the waterfall", `document.querySelectorAll('#waterfall .span-row').length >= 1`, 10*time.Second)
	// The CPU profile holding the request is cut every 10 s: the page
	// says so and tries again by itself.
	b.waitFor(t, "the profile of the trace", `document.getElementById('profile-summary') !== null || document.getElementById('profile-empty') !== null`, 45*time.Second)
	if empty := run(t, b, "empty state", chromedp.Evaluate[string](`(document.getElementById('profile-empty')||{}).textContent || ''`)); empty != "" {
		b.shot(t, "failed-profile")
		t.Fatalf("the 600 ms CPU-bound trace has no profile: %s", empty)
	}
	flame := run(t, b, "flame graph frames", chromedp.Evaluate[[]string](`[...document.querySelectorAll('#flame .fl-cell')].map(e => e.title)`))
	if !containsSub(flame, "renderReport") {
		t.Fatalf("flame graph without renderReport: %q", flame)
	}
	top := run(t, b, "top functions", chromedp.Evaluate[[]string](`[...document.querySelectorAll('#profile-top tbody td:first-child')].map(e => e.textContent)`))
	if !containsSub(top, "renderReport") {
		t.Fatalf("top functions without renderReport: %q", top)
	}
	cmd := run(t, b, "pprof command", chromedp.Evaluate[string](`document.getElementById('profile-cmd').textContent`))
	href := run(t, b, "pprof link", chromedp.Evaluate[string](`document.getElementById('profile-download').href`))
	if !strings.HasPrefix(cmd, "go tool pprof -http=: "+s.admin+"/debug/traces/") || !strings.HasSuffix(href, "/profile") {
		t.Errorf("pprof command %q, link %q", cmd, href)
	}
	if code, body := get(t, href, nil); code != http.StatusOK || len(body) < 100 {
		t.Errorf("the page's pprof link: %d, %d bytes", code, len(body))
	}
	if txt := run(t, b, "profile card text", chromedp.Evaluate[string](`document.getElementById('trace-profile').textContent`)); strings.Contains(txt, "null") || strings.Contains(txt, "undefined") {
		t.Errorf("the profile card shows %q", txt)
	}
	b.do(t, "scroll to the profile", chromedp.ScrollIntoView(chromedp.CSS("#trace-profile")))
	b.shot(t, "trace-profile")

	// A request that spent next to no CPU: the empty state says why.
	b.do(t, "open a hello trace", chromedp.Navigate(s.admin+"/#/traces?route=/hello/{name}"))
	b.waitFor(t, "the hello trace", `document.querySelectorAll('#traces-table tbody tr').length >= 1`, 15*time.Second)
	b.do(t, "open it", chromedp.Click(chromedp.CSS(`#traces-table tbody tr:first-child td:nth-child(2) a`)))
	b.waitFor(t, "its profile state", `document.getElementById('profile-summary') !== null || document.getElementById('profile-empty') !== null`, 45*time.Second)
	reason := run(t, b, "reason", chromedp.Evaluate[string](`(document.getElementById('profile-empty')||{dataset:{}}).dataset.reason || 'sampled'`))
	if reason != "no_samples" && reason != "sampled" { // a sample can land in its few µs of CPU, rarely
		t.Errorf("a fast trace's profile state: %q", reason)
	}
	b.noConsoleErrors(t, "/profile?format=json 404")
}

func containsSub(ss []string, sub string) bool {
	for _, x := range ss {
		if strings.Contains(x, sub) {
			return true
		}
	}
	return false
}

// With a token: the APIs answer 401 without it, the page shows the sign-in
// form, signing in with the token works, the session cookie is HttpOnly
// (the page's script cannot read it) and is not the token.
func TestStatusPageSignIn(t *testing.T) {
	const token = "correct-horse-battery-staple-42"
	s := startService(t, observe.WithAdminToken(token))
	b := newBrowser(t)
	s.traffic(t)

	for _, p := range []string{"/", "/debug/traces", "/debug/red", "/debug/status", "/debug/logs?trace_id=0af7651916cd43dd8448eb211c80319c", "/debug/traces/0af7651916cd43dd8448eb211c80319c"} {
		if code, body := get(t, s.admin+p, nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d %s", p, code, body)
		}
		if code, _ := get(t, s.admin+p, http.Header{"Authorization": {"Bearer wrong"}}); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d", p, code)
		}
	}
	if code, body := get(t, s.admin+"/debug/traces", http.Header{"Authorization": {"Bearer " + token}}); code != http.StatusOK {
		t.Errorf("GET /debug/traces with the token: %d %s", code, body)
	}
	if code, _ := get(t, s.admin+"/metrics", nil); code != http.StatusOK {
		t.Errorf("/metrics must stay open: %d", code)
	}

	b.do(t, "open the page", chromedp.Navigate(s.admin+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.shot(t, "signin")
	b.do(t, "sign in with a wrong token",
		chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token"),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#signin-error")),
	)
	b.do(t, "sign in",
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin")),
	)
	b.waitFor(t, "the page after sign-in", `document.querySelector('#app .card') !== null && document.getElementById('level-form') !== null`, 20*time.Second)
	if c := run(t, b, "document.cookie", chromedp.Evaluate[string](`document.cookie`)); c != "" {
		t.Fatalf("the session cookie is readable by scripts: %q", c)
	}
	// A change from the page carries the CSRF token and the cookie.
	b.do(t, "set the global level", chromedp.SetValue(chromedp.CSS("#level-select"), "warn"), chromedp.Click(chromedp.CSS("#level-apply")))
	b.waitFor(t, "the change confirmed", `(document.getElementById('level-result')||{}).textContent === 'set global to warn'`, 10*time.Second)
	if _, body := get(t, s.admin+"/loglevel", nil); !strings.Contains(string(body), `"level":"warn"`) {
		t.Fatalf("GET /loglevel after the signed-in change: %s", body)
	}
	// The cookie alone, without the page's CSRF token, changes nothing.
	cookies := run(t, b, "cookies", chromedp.Evaluate[string](`fetch('debug/status').then(r => String(r.status))`, chromedp.EvalAwaitPromise))
	if cookies != "200" {
		t.Fatalf("API with the session cookie: %s", cookies)
	}
	forged := run(t, b, "PUT without CSRF", chromedp.Evaluate[string](`fetch('loglevel', {method: 'PUT', body: '{"level":"debug"}'}).then(r => String(r.status))`, chromedp.EvalAwaitPromise))
	if forged != "403" {
		t.Fatalf("PUT /loglevel with the cookie but no CSRF token: %s, want 403", forged)
	}
	b.shot(t, "signed-in")

	b.do(t, "sign out", chromedp.Click(chromedp.CSS(`form[action="signout"] button`)), chromedp.WaitVisible(chromedp.CSS("#token")))
	// The sign-in form is the page's 401 (twice: before signing in, and
	// with the wrong token), and the forged PUT's 403 was asked for.
	b.noConsoleErrors(t, s.admin+"/ 401", s.admin+"/signin 401", s.admin+"/loglevel 403")
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
