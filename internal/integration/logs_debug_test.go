package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/logging"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel/baggage"
)

// Per-request debug across two services: service A runs in the test
// process, service B in a child process (the test binary itself, see
// TestLogsServiceProcess) with its own observe.Init, so each has its own
// configuration and they meet only over loopback HTTP: A calls B through
// middleware.Transport, which carries the trace and the baggage.

const logsChildEnv = "OBSERVE_LOGS_TEST_CHILD"

// TestLogsServiceProcess is service B when run as a child; otherwise it is
// skipped. It serves until its stdin closes (or two minutes pass).
func TestLogsServiceProcess(t *testing.T) {
	if os.Getenv(logsChildEnv) != "1" {
		t.Skip("runs only as the child process of the per-request debug test")
	}
	out, err := os.Create(os.Getenv("OBSERVE_LOGS_TEST_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	obs, err := observe.Init(context.Background(), observe.WithServiceName("service-b"), observe.WithLogWriter(out), observe.WithAdminAddr("off"))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Shutdown(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /b", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		slog.DebugContext(ctx, "b debug")
		logging.Named("b.store").DebugContext(ctx, "b store debug")
		slog.InfoContext(ctx, "b info")
		// What B would send downstream: its baggage.
		fmt.Fprint(w, baggage.FromContext(ctx).String())
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: middleware.HTTP(mux), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	fmt.Printf("ADDR=%s\n", ln.Addr())
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}

// logsChild is a running service B.
type logsChild struct {
	addr string
	file string
}

func (c *logsChild) lines(t *testing.T) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatal(err)
	}
	return logsLines(t, string(b))
}

// startLogsChild starts service B with the given debug token ("" for none).
func startLogsChild(t *testing.T, token string) *logsChild {
	t.Helper()
	file := filepath.Join(t.TempDir(), "b.log")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLogsServiceProcess$", "-test.count=1")
	env := []string{logsChildEnv + "=1", "OBSERVE_LOGS_TEST_FILE=" + file, "OBSERVE_DEBUG_TOKEN=" + token, "OBSERVE_LOG_LEVEL=info"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OTEL_") || strings.HasPrefix(k, "OBSERVE_") || strings.HasPrefix(k, "PYROSCOPE_") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ADDR="); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return &logsChild{addr: a, file: file}
	case <-time.After(30 * time.Second):
		t.Fatal("service B did not start")
	}
	return nil
}

// serviceA starts service A in this process; its /a handler calls B's /b.
func serviceA(t *testing.T, b *logsChild) string {
	t.Helper()
	client := &http.Client{Transport: middleware.Transport(nil), Timeout: 10 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /a", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		slog.DebugContext(ctx, "a debug")
		slog.InfoContext(ctx, "a info", "seen_header", r.Header.Get("X-Observe-Debug"))
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+b.addr+"/b", nil)
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		bag, _ := io.ReadAll(resp.Body)
		fmt.Fprintf(w, "seen_header=%q b_baggage=%q", r.Header.Get("X-Observe-Debug"), bag)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: middleware.HTTP(mux), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

func logsGet(t *testing.T, url string, hdr map[string]string) (string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return string(body), resp.Header
}

func byMsg(lines []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

func TestLogsPerRequestDebugAcrossServices(t *testing.T) {
	const token = "debug-t0ken-shared"
	b := startLogsChild(t, token)
	bOther := startLogsChild(t, "another-t0ken")
	_, lb := logsInit(t, map[string]string{"OBSERVE_DEBUG_TOKEN": token})
	a := serviceA(t, b)
	aToOther := serviceA(t, bOther)

	// 1. Without the header: INFO only, on both sides.
	logsGet(t, a+"/a", nil)
	// 2. A wrong token: ignored, and not echoed.
	body, hdr := logsGet(t, a+"/a", map[string]string{"X-Observe-Debug": "wrong-token"})
	if strings.Contains(body, "wrong-token") || fmt.Sprint(hdr) != strings.ReplaceAll(fmt.Sprint(hdr), "wrong-token", "") {
		t.Errorf("wrong token echoed: %s %v", body, hdr)
	}
	if len(byMsg(lb.lines(t), "a debug")) != 0 {
		t.Fatal("A logged DEBUG without a valid token")
	}
	// 3. The token: DEBUG on A and on B, same trace; the token itself is
	// neither seen by the handler, nor echoed, nor sent to B, nor logged.
	body, hdr = logsGet(t, a+"/a", map[string]string{"X-Observe-Debug": token})
	if strings.Contains(body, token) || strings.Contains(fmt.Sprint(hdr), token) {
		t.Errorf("token echoed: %s %v", body, hdr)
	}
	if !strings.Contains(body, `seen_header=""`) || !strings.Contains(body, "observe.debug"+"=1.") {
		t.Errorf("A's handler saw the header, or B got no proof: %s", body)
	}
	aDebug := byMsg(lb.lines(t), "a debug")
	if len(aDebug) != 1 {
		t.Fatalf("A: %d debug lines, want 1\n%s", len(aDebug), lb.String())
	}
	traceID := aDebug[0]["trace_id"]
	logsEventually(t, 5*time.Second, "B's lines", func() bool { return len(byMsg(b.lines(t), "b info")) == 3 })
	bl := b.lines(t)
	bDebug, bStore := byMsg(bl, "b debug"), byMsg(bl, "b store debug")
	if len(bDebug) != 1 || len(bStore) != 1 {
		t.Fatalf("B: %d/%d debug lines, want 1/1\n%v", len(bDebug), len(bStore), bl)
	}
	if bDebug[0]["trace_id"] != traceID || bStore[0]["trace_id"] != traceID || bDebug[0]["level"] != "DEBUG" || bDebug[0]["service.name"] != "service-b" {
		t.Errorf("B's debug lines not of A's trace %v: %v %v", traceID, bDebug[0], bStore[0])
	}
	all := lb.String()
	bRaw, _ := os.ReadFile(b.file)
	if strings.Contains(all, token) || strings.Contains(string(bRaw), token) {
		t.Error("the token reached a log line")
	}

	// 4. A forged baggage flag straight to B: ignored, and stripped from
	// what B would send on.
	body, _ = logsGet(t, "http://"+b.addr+"/b", map[string]string{"baggage": "observe.debug=1,tenant=acme"})
	if strings.Contains(body, "observe.debug") || !strings.Contains(body, "tenant=acme") {
		t.Errorf("forged member not stripped, or others lost: %q", body)
	}
	logsEventually(t, 5*time.Second, "B's lines", func() bool { return len(byMsg(b.lines(t), "b info")) == 4 })
	if n := len(byMsg(b.lines(t), "b debug")); n != 1 {
		t.Errorf("B honoured a forged flag: %d debug lines", n)
	}

	// 5. A service configured with another token does not honour A's proof.
	logsGet(t, aToOther+"/a", map[string]string{"X-Observe-Debug": token})
	logsEventually(t, 5*time.Second, "B2's lines", func() bool { return len(byMsg(bOther.lines(t), "b info")) == 1 })
	if n := len(byMsg(bOther.lines(t), "b debug")); n != 0 {
		t.Errorf("a service with another token honoured the proof: %d debug lines", n)
	}
	if n := len(byMsg(lb.lines(t), "a debug")); n != 2 {
		t.Errorf("A: %d debug lines after two debug requests", n)
	}
}

func TestLogsPerRequestDebugNeedsAToken(t *testing.T) {
	// No OBSERVE_DEBUG_TOKEN: the admin token is never accepted in its place.
	const admin = "admin-t0ken-not-for-debug"
	_, lb := logsInit(t, map[string]string{"OBSERVE_ADMIN_TOKEN": admin})
	url := serveDebugX(t)
	for _, v := range []string{"", "anything", " ", admin} {
		logsGet(t, url, map[string]string{"X-Observe-Debug": v})
	}
	if n := len(lb.find(t, "x debug")); n != 0 {
		t.Errorf("debug without a configured token: %d lines", n)
	}
}

// The public port is no oracle for the admin token: it does not turn debug
// on; every refused header is counted on /metrics, and past the failure
// budget headers are refused without being compared.
func TestLogsPerRequestDebugGuessesCountedAndLimited(t *testing.T) {
	const admin, debug = "admin-t0ken-guarding-pprof", "debug-t0ken-of-its-own"
	obs, lb := logsInit(t, map[string]string{"OBSERVE_ADMIN_TOKEN": admin, "OBSERVE_DEBUG_TOKEN": debug, "OBSERVE_ADMIN_ADDR": "127.0.0.1:0"})
	url := serveDebugX(t)

	logsGet(t, url, map[string]string{"X-Observe-Debug": debug})
	if n := len(lb.find(t, "x debug")); n != 1 {
		t.Fatalf("the debug token: %d debug lines, want 1", n)
	}
	const burst = 10 // logging's failure budget: a burst of 10, then 5 a second
	const guesses = 3 * burst
	logsGet(t, url, map[string]string{"X-Observe-Debug": admin})
	for i := 1; i < guesses; i++ {
		logsGet(t, url, map[string]string{"X-Observe-Debug": fmt.Sprintf("guess-%d", i)})
	}
	if n := len(lb.find(t, "x debug")); n != 1 {
		t.Fatalf("the admin token or a guess turned debug on: %d debug lines", n)
	}
	resp, err := http.Get("http://" + obs.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var mismatch, limited int
	for _, l := range strings.Split(string(body), "\n") {
		fmt.Sscanf(l, `observe_debug_token_failures_total{reason="mismatch"} %d`, &mismatch)
		fmt.Sscanf(l, `observe_debug_token_failures_total{reason="rate_limited"} %d`, &limited)
	}
	// The bucket refills at 5 a second while the guesses go out: a few
	// more may have been compared than the burst.
	if mismatch+limited != guesses || mismatch < burst || limited < guesses/2 {
		t.Errorf("mismatch %d, rate_limited %d for %d guesses (burst %d)\n%s", mismatch, limited, guesses, burst, body)
	}
	if strings.Contains(lb.String(), admin) || strings.Contains(lb.String(), debug) {
		t.Error("a token reached a log line")
	}
}

// serveDebugX serves GET /x, which logs "x debug" at DEBUG, through
// middleware.HTTP on 127.0.0.1 until the test ends, and returns its URL.
func serveDebugX(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {
		slog.DebugContext(r.Context(), "x debug")
	})
	srv := &http.Server{Handler: middleware.HTTP(mux), ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/x"
}
