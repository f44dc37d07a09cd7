package testbackend

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"
)

// JaegerVersion is the Jaeger v2 release the tests run against.
const JaegerVersion = "v1.76.0"

const jaegerHowTo = ".ci/build-jaeger.sh builds it into ~/.cache/observe-test/ (a few minutes, through the Go module proxy); or set OBSERVE_JAEGER_BIN"

// JaegerBin finds the Jaeger v2 binary: $OBSERVE_JAEGER_BIN, else the one
// .ci/build-jaeger.sh caches under ~/.cache/observe-test/.
func JaegerBin() (string, bool) {
	if p := os.Getenv("OBSERVE_JAEGER_BIN"); p != "" {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, true
		}
		return p, false
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", false
	}
	p := filepath.Join(home, ".cache", "observe-test", "jaeger-"+JaegerVersion)
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		return p, true
	}
	return p, false
}

// Jaeger is a real Jaeger v2 (OTLP receivers, in-memory storage, query API)
// a test started on 127.0.0.1 ports of its own. It stops when the test ends.
type Jaeger struct {
	OTLPGRPC string // http://127.0.0.1:PORT (OTLP over gRPC)
	OTLPHTTP string // http://127.0.0.1:PORT (OTLP over HTTP; traces at /v1/traces)
	QueryURL string // http://127.0.0.1:PORT (/api/traces/<id>, /api/services)

	client *http.Client
	logs   *LockedBuffer
}

// jaegerConfig binds everything to 127.0.0.1 and turns off what would
// listen elsewhere (the collector's own metrics on :8888 among them).
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
      http:
        endpoint: 127.0.0.1:%d
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`

// StartJaeger starts Jaeger and waits until its receivers and query API
// answer. A missing binary is a skip on a laptop and a failure in CI.
func StartJaeger(t testing.TB) *Jaeger {
	t.Helper()
	bin, ok := JaegerBin()
	if !ok {
		Missing(t, "Jaeger v2 ("+bin+")", jaegerHowTo)
	}
	query, queryGRPC, otlpGRPC, otlpHTTP := FreePort(t), FreePort(t), FreePort(t), FreePort(t)
	cfg := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, jaegerConfig, query, queryGRPC, otlpGRPC, otlpHTTP), 0o600); err != nil {
		t.Fatal(err)
	}
	j := &Jaeger{
		OTLPGRPC: "http://127.0.0.1:" + strconv.Itoa(otlpGRPC),
		OTLPHTTP: "http://127.0.0.1:" + strconv.Itoa(otlpHTTP),
		QueryURL: "http://127.0.0.1:" + strconv.Itoa(query),
		client:   &http.Client{Timeout: 5 * time.Second},
		logs:     &LockedBuffer{Max: 1 << 20},
	}
	cmd := exec.Command(bin, "--config="+cfg)
	// Jaeger's own tracing would otherwise dial localhost:4317, someone
	// else's collector perhaps.
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true")
	launch(t, "jaeger", cmd, j.logs, jaegerHowTo, func() bool { return j.ready(otlpGRPC, otlpHTTP) })
	return j
}

func (j *Jaeger) ready(ports ...int) bool {
	resp, err := j.client.Get(j.QueryURL + "/api/services")
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	for _, p := range ports {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), time.Second)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// JaegerTrace is one trace as Jaeger's query API returns it.
type JaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []JaegerSpan             `json:"spans"`
	Processes map[string]JaegerProcess `json:"processes"`
	Warnings  []string                 `json:"warnings"`
}

// JaegerSpan is a span in a JaegerTrace.
type JaegerSpan struct {
	TraceID       string            `json:"traceID"`
	SpanID        string            `json:"spanID"`
	OperationName string            `json:"operationName"`
	References    []JaegerReference `json:"references"`
	ProcessID     string            `json:"processID"`
	Tags          []JaegerTag       `json:"tags"`
	StartTime     int64             `json:"startTime"` // µs
	Duration      int64             `json:"duration"`  // µs
}

// JaegerReference links a span to another (CHILD_OF is the parent).
type JaegerReference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// JaegerTag is a span or process attribute.
type JaegerTag struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// JaegerProcess is the service a span came from.
type JaegerProcess struct {
	ServiceName string      `json:"serviceName"`
	Tags        []JaegerTag `json:"tags"`
}

// Tag returns the value of a span's tag as a string ("" when absent).
func (s *JaegerSpan) Tag(key string) string {
	for _, t := range s.Tags {
		if t.Key == key {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

// Parent returns the span's CHILD_OF reference's span ID ("" for a root).
func (s *JaegerSpan) Parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// Service returns the service name of a span of the trace.
func (tr *JaegerTrace) Service(s *JaegerSpan) string { return tr.Processes[s.ProcessID].ServiceName }

// Services returns the trace's service names, sorted.
func (tr *JaegerTrace) Services() []string {
	seen := map[string]bool{}
	for _, p := range tr.Processes {
		seen[p.ServiceName] = true
	}
	var out []string
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Span returns the span with the given ID, or nil.
func (tr *JaegerTrace) Span(id string) *JaegerSpan {
	for i := range tr.Spans {
		if tr.Spans[i].SpanID == id {
			return &tr.Spans[i]
		}
	}
	return nil
}

// Trace fetches one trace; it returns (nil, nil) while Jaeger does not have
// it yet.
func (j *Jaeger) Trace(ctx context.Context, traceID string) (*JaegerTrace, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", j.QueryURL+"/api/traces/"+traceID, nil)
	if err != nil {
		return nil, err
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jaeger: GET /api/traces/%s: %s", traceID, resp.Status)
	}
	var body struct {
		Data []JaegerTrace `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if len(body.Data) == 0 {
		return nil, nil
	}
	return &body.Data[0], nil
}

// WaitTrace polls until the trace holds at least spans spans, or fails the
// test after timeout.
func (j *Jaeger) WaitTrace(t testing.TB, traceID string, spans int, timeout time.Duration) *JaegerTrace {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last *JaegerTrace
	var lastErr error
	for {
		tr, err := j.Trace(ctx, traceID)
		if err == nil && tr != nil {
			last = tr
			if len(tr.Spans) >= spans {
				return tr
			}
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			n := 0
			if last != nil {
				n = len(last.Spans)
			}
			t.Fatalf("jaeger: trace %s has %d spans after %v, want %d (last error: %v)", traceID, n, timeout, spans, lastErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
