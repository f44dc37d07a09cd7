package integration

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"go.uber.org/goleak"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/observekit/observe/internal/testbackend"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	// Every test of the package ends with no goroutine of its own left
	// (the root package's end-of-package check, which the reliability
	// suites had there). net/http keeps idle client connections'
	// goroutines until closed; tests close them, but the transport may
	// still be winding down.
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

// proc is a role process the test started.
type proc struct {
	name   string
	addr   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lockedBuf
	exited chan struct{}
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// childEnv is the test's environment without observe's and OTel's
// variables, plus env.
func childEnv(env ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OTEL_") || strings.HasPrefix(k, "OBSERVE_") || strings.HasPrefix(k, "PYROSCOPE_") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, env...)
}

// startRole re-executes the test binary as role and waits for READY.
func startRole(t *testing.T, role, service string, env ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: role, stderr: &lockedBuf{}, exited: make(chan struct{})}
	p.cmd = exec.Command(exe, "-test.run=^$")
	p.cmd.Env = childEnv(append(env,
		roleEnv+"="+role,
		"SERVICE_NAME="+service,
		"OBSERVE_ADMIN_ADDR=off",
		"OBSERVE_LOG_LEVEL=warn",
	)...)
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("%s stderr:\n%s", role, p.stderr.String())
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- addr
			}
		}
	}()
	select {
	case p.addr = <-ready:
		return p
	case <-p.exited:
		t.Fatalf("%s exited before it was ready:\n%s", role, p.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("%s not ready after 20s:\n%s", role, p.stderr.String())
	}
	return nil
}

// stop closes the process's stdin (it then shuts down, flushing its spans)
// and waits for it; it reports a non-zero exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if p.stdin != nil {
		_ = p.stdin.Close()
		p.stdin = nil
	}
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("%s did not stop within 15s", p.name)
		return
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("%s exited with %d:\n%s", p.name, code, p.stderr.String())
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestTraceAcrossThreeProcesses: HTTP frontend → HTTP backend (through
// middleware.Transport) → gRPC item service (through the gRPC middleware),
// three processes each with its own observe.Init exporting OTLP to a real
// Jaeger, one request carrying a traceparent: Jaeger must show one trace,
// every span parented, the incoming traceparent continued.
func TestTraceAcrossThreeProcesses(t *testing.T) {
	start := time.Now()
	jaeger := testbackend.StartJaeger(t)

	// Each process reaches Jaeger its own way: OTLP/gRPC, OTLP/HTTP with
	// the base endpoint, OTLP/HTTP with the traces endpoint.
	itemsvc := startRole(t, "itemsvc", "itemsvc",
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_ENDPOINT="+jaeger.OTLPGRPC)
	backend := startRole(t, "backend", "backend",
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT="+jaeger.OTLPHTTP,
		"ITEMSVC_ADDR="+itemsvc.addr)
	frontend := startRole(t, "frontend", "frontend",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="+jaeger.OTLPHTTP+"/v1/traces",
		"BACKEND_URL=http://"+backend.addr)

	traceID, parentID := randomHex(16), randomHex(8)
	req, _ := http.NewRequest("GET", "http://"+frontend.addr+"/api/items/42", nil)
	req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	client.CloseIdleConnections()
	if resp.StatusCode != 200 || string(body) != "item 42 by itemsvc" {
		t.Fatalf("frontend answered %d %q", resp.StatusCode, body)
	}

	// Stopping the processes flushes their spans.
	for _, p := range []*proc{frontend, backend, itemsvc} {
		p.stop(t)
	}

	// frontend: server + client; backend: server + gRPC client; itemsvc:
	// gRPC server + items.lookup + items.audit.
	const wantSpans = 7
	tr := jaeger.WaitTrace(t, traceID, wantSpans, 20*time.Second)
	if len(tr.Spans) != wantSpans {
		t.Errorf("trace has %d spans, want %d", len(tr.Spans), wantSpans)
	}
	if got := tr.Services(); !slices.Equal(got, []string{"backend", "frontend", "itemsvc"}) {
		t.Errorf("services %v", got)
	}

	type want struct{ service, name, kind, parentName string }
	wants := []want{
		{"frontend", "GET /api/items/{id}", "server", ""}, // parent: the incoming traceparent
		{"frontend", "GET", "client", "GET /api/items/{id}"},
		{"backend", "GET /internal/items/{id}", "server", "GET"},
		{"backend", "grpc.testing.TestService/UnaryCall", "client", "GET /internal/items/{id}"},
		{"itemsvc", "grpc.testing.TestService/UnaryCall", "server", "grpc.testing.TestService/UnaryCall"},
		{"itemsvc", "items.lookup", "internal", "grpc.testing.TestService/UnaryCall"},
		{"itemsvc", "items.audit", "internal", "grpc.testing.TestService/UnaryCall"},
	}
	var lines []string
	for i := range tr.Spans {
		s := &tr.Spans[i]
		parent := tr.Span(s.Parent())
		pname := "<" + s.Parent() + ">"
		if parent != nil {
			pname = parent.OperationName
		}
		lines = append(lines, fmt.Sprintf("%-9s %-8s %-40s ← %s", tr.Service(s), s.Tag("span.kind"), s.OperationName, pname))
	}
	t.Logf("trace %s in Jaeger:\n  %s", traceID, strings.Join(lines, "\n  "))

	for _, w := range wants {
		var found *struct{}
		for i := range tr.Spans {
			s := &tr.Spans[i]
			if tr.Service(s) != w.service || s.OperationName != w.name || s.Tag("span.kind") != w.kind {
				continue
			}
			found = &struct{}{}
			if s.TraceID != traceID {
				t.Errorf("%s %q: trace %s", w.service, w.name, s.TraceID)
			}
			if w.parentName == "" {
				if s.Parent() != parentID {
					t.Errorf("root %q does not continue the incoming traceparent: parent %q, want %q", w.name, s.Parent(), parentID)
				}
				continue
			}
			p := tr.Span(s.Parent())
			if p == nil {
				t.Errorf("%s %q: parent %q not in the trace", w.service, w.name, s.Parent())
				continue
			}
			if p.OperationName != w.parentName {
				t.Errorf("%s %q: parent is %q, want %q", w.service, w.name, p.OperationName, w.parentName)
			}
		}
		if found == nil {
			t.Errorf("no %s span %q of kind %s", w.service, w.name, w.kind)
		}
	}
	// Every span but the root has its parent in the trace.
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if s.Parent() != parentID && tr.Span(s.Parent()) == nil {
			t.Errorf("orphan span %q (parent %q)", s.OperationName, s.Parent())
		}
	}
	// Semantic-convention attributes made it through OTLP.
	for i := range tr.Spans {
		s := &tr.Spans[i]
		switch {
		case s.OperationName == "GET /api/items/{id}":
			if s.Tag("http.route") != "/api/items/{id}" || s.Tag("http.response.status_code") != "200" || s.Tag("url.path") != "/api/items/42" {
				t.Errorf("frontend server span tags: %v", s.Tags)
			}
		case s.OperationName == "grpc.testing.TestService/UnaryCall":
			if s.Tag("rpc.system.name") != "grpc" || s.Tag("rpc.method") != "grpc.testing.TestService/UnaryCall" || s.Tag("rpc.response.status_code") != "OK" {
				t.Errorf("gRPC span tags: %v", s.Tags)
			}
		}
	}
	if took := time.Since(start); took > 60*time.Second {
		t.Errorf("integration test took %v (budget 60s)", took)
	}
}
