package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/observekit/observe/internal/cpuring"
	"github.com/observekit/observe/internal/testbackend"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel"
	"go.uber.org/goleak"
)

// burnCPU is the CPU-bound handler's work; the profile of its trace must
// name it.
//
//go:noinline
func burnCPU(d time.Duration) uint64 {
	var x uint64 = 1
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := range 20000 {
			x = x*6364136223846793005 + uint64(i)
		}
	}
	return x
}

// traceProfileService runs Init with span↔profile links on (no Pyroscope:
// the ring's own collector) and a real HTTP server with a CPU-bound route
// and a fast one.
func traceProfileService(t *testing.T, opts ...Option) (*Observer, *httptest.Server) {
	t.Helper()
	for _, v := range []string{"PYROSCOPE_SERVER_ADDRESS", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OBSERVE_ADMIN_TOKEN", "OTEL_SDK_DISABLED", "OBSERVE_PROFILE_LINKS"} {
		t.Setenv(v, "")
	}
	opts = append([]Option{WithServiceName("trace-profile-test"), WithLogWriter(io.Discard), WithAdminAddr("off"),
		func(c *config) { c.statusProfEvery = 500 * time.Millisecond }}, opts...)
	o, err := Init(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /burn/{ms}", func(w http.ResponseWriter, r *http.Request) {
		var ms int
		fmt.Sscan(r.PathValue("ms"), &ms)
		fmt.Fprint(w, burnCPU(time.Duration(ms)*time.Millisecond))
	})
	mux.HandleFunc("GET /fast", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	srv := httptest.NewServer(middleware.HTTP(mux, middleware.WithObserver(o)))
	t.Cleanup(srv.Close)
	return o, srv
}

// traceOf sends GET path and returns the trace ID of the request's span.
func traceOf(t *testing.T, o *Observer, base, path, route string) string {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var doc struct {
		Traces []struct {
			TraceID string `json:"trace_id"`
		} `json:"traces"`
	}
	code, body := adminGet(t, o.AdminHandler(), "/debug/traces?limit=1&route="+route)
	if err := json.Unmarshal(body, &doc); code != 200 || err != nil || len(doc.Traces) != 1 {
		t.Fatalf("GET /debug/traces: %d %s", code, body)
	}
	return doc.Traces[0].TraceID
}

// profileOf polls GET /debug/traces/{id}/profile?format=json while its
// profile is pending, and returns the first other answer.
func profileOf(t *testing.T, o *Observer, id string) (int, []byte) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := adminGet(t, o.AdminHandler(), "/debug/traces/"+id+"/profile?format=json")
		var e traceProfileError
		_ = json.Unmarshal(body, &e)
		if code != http.StatusNotFound || e.Reason != "pending" || time.Now().After(deadline) {
			return code, body
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A CPU-bound request traced with links on: its trace's profile holds the
// handler's function, as JSON (top functions, flame graph) and as a pprof
// file that the real `go tool pprof -top` reads. A request that spent no
// CPU gets the honest 404; goroutines end with Shutdown.
func TestTraceProfileOfACPUBoundRequest(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	o, srv := traceProfileService(t, WithProfileLinks(true))
	base := srv.URL
	if o.cpuCollector == nil || o.cpuProfiles == nil {
		t.Fatal("links on without Pyroscope: no collector")
	}

	// Enough CPU to be sampled on a loaded machine: the handler burns
	// 400 ms of wall time, and the test retries a few times if sampling
	// still missed it (a test machine shares its cores).
	var id string
	var code int
	var body []byte
	for try := 0; try < 4; try++ {
		id = traceOf(t, o, base, "/burn/400", "/burn/{ms}")
		if code, body = profileOf(t, o, id); code == http.StatusOK {
			break
		}
		t.Logf("try %d: %d %s", try, code, body)
	}
	if code != http.StatusOK {
		t.Fatalf("profile of a 400 ms CPU-bound trace: %d %s", code, body)
	}
	var doc traceProfileDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.TraceID != id || len(doc.Spans) != 1 || doc.Samples < 1 || doc.CPUNanos <= 0 || doc.Flame == nil || doc.Searched < 1 {
		t.Fatalf("summary: %s", body)
	}
	inTop := false
	for _, f := range doc.Top {
		if strings.HasSuffix(f.Name, ".burnCPU") && f.Cum > 0 {
			inTop = true
		}
	}
	if !inTop {
		t.Errorf("burnCPU not among the top functions: %s", body)
	}

	// The pprof form parses, holds only this trace's span, and names the handler.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/debug/traces/"+id+"/profile", nil)
	req.RemoteAddr, req.Host = "127.0.0.1:1234", "127.0.0.1:9464"
	o.AdminHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/octet-stream" ||
		!strings.Contains(rec.Header().Get("Content-Disposition"), "trace-"+id+".pb.gz") {
		t.Fatalf("pprof form: %d %v", rec.Code, rec.Header())
	}
	raw := rec.Body.Bytes()
	p, err := profile.ParseData(raw)
	if err != nil {
		t.Fatal(err)
	}
	inBurn := 0
	for _, s := range p.Sample {
		if got := s.Label[cpuring.SpanLabel]; len(got) != 1 || got[0] != doc.Spans[0] {
			t.Errorf("a sample of span %v in the profile of span %s", got, doc.Spans[0])
		}
		for _, loc := range s.Location {
			for _, l := range loc.Line {
				if strings.HasSuffix(l.Function.Name, ".burnCPU") {
					inBurn++
				}
			}
		}
	}
	if inBurn == 0 {
		t.Errorf("no sample in burnCPU among %d", len(p.Sample))
	}
	// The real go tool pprof reads the file.
	file := filepath.Join(t.TempDir(), "trace.pb.gz")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	goBin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	out, err := exec.Command(goBin, "tool", "pprof", "-top", file).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof -top: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "burnCPU") {
		t.Errorf("go tool pprof -top does not show burnCPU:\n%s", out)
	}

	// A request that spends (next to) no CPU: its profile is honest about it.
	fast := traceOf(t, o, base, "/fast", "/fast")
	code, body = profileOf(t, o, fast)
	var e traceProfileError
	if err := json.Unmarshal(body, &e); code != http.StatusNotFound || err != nil || e.Reason != "no_samples" || !strings.Contains(e.Error, "sampling missed this trace") {
		// A sample can land in a fast request's few µs of CPU, rarely.
		if code != http.StatusOK {
			t.Errorf("fast request: %d %s, want 404 no_samples", code, body)
		}
	}

	// /debug/status shows the ring.
	_, body = adminGet(t, o.AdminHandler(), "/debug/status")
	var st statusDoc
	if err := json.Unmarshal(body, &st); err != nil || !st.Profiling.TraceCPU || st.Self.CPUProfiles == nil || st.Self.CPUProfiles.Profiles < 1 {
		t.Errorf("/debug/status: %v %s", err, body)
	}

	if err := o.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	http.DefaultClient.CloseIdleConnections()
	if err := goleak.Find(ignore, goleak.IgnoreTopFunction("internal/poll.runtime_pollWait")); err != nil {
		time.Sleep(200 * time.Millisecond) // the test server's idle connections
		if err := goleak.Find(ignore, goleak.IgnoreTopFunction("internal/poll.runtime_pollWait")); err != nil {
			t.Error(err)
		}
	}
}

// Bad ids are a 400, unknown traces and a disabled ring a 404 with a
// reason, and the endpoint is protected like the other /debug APIs.
func TestTraceProfileErrors(t *testing.T) {
	o, _ := traceProfileService(t, WithProfileLinks(true))
	defer o.Shutdown(context.Background())
	h := o.AdminHandler()
	for path, want := range map[string]int{
		"/debug/traces/xyz/profile":                                          400,
		"/debug/traces/00000000000000000000000000000000/profile":             400,
		"/debug/traces/0123456789abcdef0123456789abcdeg/profile":             400,
		"/debug/traces/0123456789abcdef0123456789abcdef/profile?format=svg":  400,
		"/debug/traces/0123456789abcdef0123456789abcdef/profile?x=1":         400,
		"/debug/traces/0123456789abcdef0123456789abcdef/profile":             404,
		"/debug/traces/0123456789abcdef0123456789abcdef/profile?format=json": 404,
	} {
		code, body := adminGet(t, h, path)
		if code != want || !json.Valid(body) || !strings.Contains(string(body), `"error"`) {
			t.Errorf("GET %s: %d %s, want %d with a JSON error", path, code, body, want)
		}
	}
	// From a remote address without a token: 403, as /debug/traces.
	req := httptest.NewRequest(http.MethodGet, "/debug/traces/0123456789abcdef0123456789abcdef/profile", nil)
	req.RemoteAddr = "192.0.2.7:5555"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("remote client, no token: %d", rec.Code)
	}

	// Links off: a known trace's profile says why there is none.
	off, srv2 := traceProfileService(t, WithProfileLinks(false))
	defer off.Shutdown(context.Background())
	if off.cpuProfiles != nil || off.cpuCollector != nil {
		t.Fatal("links off, yet CPU profiles are kept")
	}
	id := traceOf(t, off, srv2.URL, "/fast", "/fast")
	code, body := adminGet(t, off.AdminHandler(), "/debug/traces/"+id+"/profile")
	if code != 404 || !strings.Contains(string(body), `"links_off"`) {
		t.Errorf("links off: %d %s", code, body)
	}
}

// With a token, the profile needs it, like every protected endpoint.
func TestTraceProfileNeedsTheToken(t *testing.T) {
	t.Setenv("OBSERVE_ADMIN_TOKEN", "s3cret-token-for-the-test")
	o, err := Init(context.Background(), WithLogWriter(io.Discard), WithAdminAddr("off"), WithProfileLinks(true))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Shutdown(context.Background())
	for _, auth := range []string{"", "Bearer wrong"} {
		req := httptest.NewRequest(http.MethodGet, "/debug/traces/0123456789abcdef0123456789abcdef/profile", nil)
		req.RemoteAddr, req.Host = "127.0.0.1:1234", "127.0.0.1:9464"
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		o.AdminHandler().ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401", auth, rec.Code)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/debug/traces/0123456789abcdef0123456789abcdef/profile", nil)
	req.RemoteAddr, req.Host = "127.0.0.1:1234", "127.0.0.1:9464"
	req.Header.Set("Authorization", "Bearer s3cret-token-for-the-test")
	rec := httptest.NewRecorder()
	o.AdminHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("with the token, an unknown trace: %d, want 404", rec.Code)
	}
}

// OBSERVE_PROFILE_LINKS and the ring's bounds are read, checked and
// overridden by options.
func TestTraceProfileConfig(t *testing.T) {
	c, err := loadConfig(func(k string) string {
		return map[string]string{"OBSERVE_PROFILE_LINKS": "on", "OBSERVE_STATUS_PROFILES": "12", "OBSERVE_STATUS_PROFILE_BYTES": "1MiB"}[k]
	}, nil)
	if err != nil || !c.profileLinksOn() || c.statusProfiles != 12 || c.statusProfBytes != 1<<20 {
		t.Fatalf("from the environment: %v %v %d %d", err, c.profileLinksOn(), c.statusProfiles, c.statusProfBytes)
	}
	c, err = loadConfig(func(k string) string { return map[string]string{"OBSERVE_PROFILE_LINKS": "on"}[k] },
		[]Option{WithProfileLinks(false), WithStatusLimits(StatusLimits{Profiles: 3, ProfileBytes: 128 << 10})})
	if err != nil || c.profileLinksOn() || c.statusProfiles != 3 || c.statusProfBytes != 128<<10 {
		t.Fatalf("options win: %v %v %d %d", err, c.profileLinksOn(), c.statusProfiles, c.statusProfBytes)
	}
	c, _ = loadConfig(func(string) string { return "" }, nil)
	if c.profileLinksOn() || c.statusProfiles != cpuring.DefaultProfiles || c.statusProfBytes != cpuring.DefaultBytes {
		t.Fatalf("defaults: %v %d %d", c.profileLinksOn(), c.statusProfiles, c.statusProfBytes)
	}
	for name, v := range map[string]string{"OBSERVE_PROFILE_LINKS": "maybe", "OBSERVE_STATUS_PROFILES": "0", "OBSERVE_STATUS_PROFILE_BYTES": "1KiB"} {
		_, err := loadConfig(func(k string) string {
			if k == name {
				return v
			}
			return ""
		}, nil)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: %v", name, v, err)
		}
	}
}

// With Pyroscope configured, the push feeds the ring (no second CPU
// profiler): the trace's profile is cut from the profiles pushed, and the
// server got them too.
func TestTraceProfileFromThePyroscopePush(t *testing.T) {
	recv := testbackend.StartPyroscope(t)
	t.Setenv("OTEL_SDK_DISABLED", "")
	o, srv := traceProfileService(t, WithProfileLinks(true), WithProfileUploadInterval(500*time.Millisecond),
		func(c *config) { c.pyroscopeAddr = recv.URL })
	if !o.profiler.Pushing() || o.cpuCollector != nil || o.cpuProfiles == nil {
		t.Fatalf("pushing %v, own collector %v, ring %v", o.profiler.Pushing(), o.cpuCollector != nil, o.cpuProfiles != nil)
	}
	var code int
	var body []byte
	for try := 0; try < 4; try++ {
		id := traceOf(t, o, srv.URL, "/burn/400", "/burn/{ms}")
		if code, body = profileOf(t, o, id); code == http.StatusOK {
			break
		}
		t.Logf("try %d: %d %s", try, code, body)
	}
	if code != http.StatusOK || !strings.Contains(string(body), ".burnCPU") {
		t.Fatalf("profile of a CPU-bound trace while pushing: %d %s", code, body)
	}
	if err := o.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	cpu := 0
	for _, u := range recv.Uploads() {
		if u.Units == "samples" {
			cpu++
		}
	}
	if cpu == 0 || o.cpuProfiles.Stats().Added == 0 {
		t.Errorf("%d CPU uploads received, %d profiles kept: the push and the ring both get them", cpu, o.cpuProfiles.Stats().Added)
	}
}

// Label values other than span_id are redacted like span attributes: a
// secret in a span name or in the application's own pprof labels never
// reaches the profile's answers.
func TestTraceProfileRedactsLabels(t *testing.T) {
	const email, card, password = "jane.doe@privatemail.org", "4111111111111111", "hunter2-Zq9"
	o, _ := traceProfileService(t, WithProfileLinks(true))
	defer o.Shutdown(context.Background())
	var id string
	var code int
	var body []byte
	for try := 0; try < 4 && code != http.StatusOK; try++ {
		// A local root span named after a secret (the span_name label),
		// the application's own labels holding more.
		ctx, span := otel.Tracer("t").Start(context.Background(), "charge "+email)
		pprof.Do(ctx, pprof.Labels("password", password, "note", "card "+card), func(context.Context) { burnCPU(300 * time.Millisecond) })
		span.End()
		id = span.SpanContext().TraceID().String()
		code, body = profileOf(t, o, id)
	}
	if code != http.StatusOK {
		t.Fatalf("profile: %d %s", code, body)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/debug/traces/"+id+"/profile", nil)
	req.RemoteAddr, req.Host = "127.0.0.1:1234", "127.0.0.1:9464"
	o.AdminHandler().ServeHTTP(rec, req)
	p, err := profile.ParseData(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	_ = p.WriteUncompressed(&raw)
	all := string(body) + raw.String()
	for _, secret := range []string{email, card, password} {
		if strings.Contains(all, secret) {
			t.Errorf("%q in the profile's answers", secret)
		}
	}
	if !strings.Contains(raw.String(), "[REDACTED") {
		t.Errorf("no redaction mark in the labels: %v", p.Sample[0].Label)
	}
}

// The ring's bound at the API: once the profiles covering a trace are
// evicted, its profile is a 404 that says so, and the evictions are counted.
func TestTraceProfileEvicted(t *testing.T) {
	o, srv := traceProfileService(t, WithProfileLinks(true), WithStatusLimits(StatusLimits{Profiles: 1}),
		func(c *config) { c.statusProfEvery = 200 * time.Millisecond })
	defer o.Shutdown(context.Background())
	id := traceOf(t, o, srv.URL, "/burn/50", "/burn/{ms}")
	deadline := time.Now().Add(10 * time.Second)
	for o.cpuProfiles.Stats().Evicted < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	code, body := adminGet(t, o.AdminHandler(), "/debug/traces/"+id+"/profile?format=json")
	var e traceProfileError
	if err := json.Unmarshal(body, &e); code != http.StatusNotFound || err != nil || e.Reason != "evicted" {
		t.Fatalf("a trace older than the one kept profile: %d %s", code, body)
	}
	if s := o.cpuProfiles.Stats(); s.Profiles != 1 || s.Evicted < 3 {
		t.Errorf("ring: %+v", s)
	}
}
