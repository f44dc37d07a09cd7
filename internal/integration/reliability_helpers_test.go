package integration

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/middleware"
)

// Helpers of the reliability tests (reliability_*_test.go).

// reliabEnv clears every variable Init reads and turns the admin listener
// off: the tests use AdminHandler.
// exportEverySignal points traces, metrics (beside Prometheus) and logs at
// one OTLP endpoint, over protocol (the default when empty).
func exportEverySignal(t *testing.T, endpoint, protocol string) {
	t.Helper()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	if protocol != "" {
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_METRICS_EXPORTER", "prometheus,otlp")
	t.Setenv("OTEL_LOGS_EXPORTER", "otlp")
}

func reliabEnv(t *testing.T) {
	t.Helper()
	for _, v := range append(logsEnvVars[:len(logsEnvVars):len(logsEnvVars)], []string{
		"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS",
		"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
		"OBSERVE_LOG_BUFFER", "OBSERVE_DRAIN_DELAY", "KUBERNETES_SERVICE_HOST",
		"PYROSCOPE_BASIC_AUTH_USER", "PYROSCOPE_BASIC_AUTH_PASSWORD",
		"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_INSECURE",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
		"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
		"OTEL_EXPORTER_OTLP_LOGS_HEADERS", "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
		"OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT",
		"OBSERVE_LOG_SAMPLING", "OBSERVE_LOG_MAX_VALUE_BYTES", "OBSERVE_REDACT_HASH_KEY",
		"OBSERVE_TAIL_LATENCY", "OBSERVE_TAIL_ERRORS", "OBSERVE_TAIL_MAX_SPANS", "OBSERVE_TAIL_MAX_TRACES",
		"OBSERVE_NATIVE_HISTOGRAMS", "OBSERVE_METRIC_SERIES_LIMIT",
	}...) {
		t.Setenv(v, "")
	}
	t.Setenv("OBSERVE_ADMIN_ADDR", "off")
}

// initObs starts observe (logsInit's identity, no access log) on the
// environment the test set up, and shuts it down at the end of the test.
func initObs(t *testing.T, opts ...observe.Option) (*observe.Observer, *logsBuffer) {
	t.Helper()
	return logsInit(t, nil, append([]observe.Option{observe.WithAccessLog(false)}, opts...)...)
}

// warnSink is a log writer that keeps WARN and ERROR lines and counts the
// rest: a million INFO lines cost nothing to keep.
type warnSink struct {
	mu    sync.Mutex
	kept  bytes.Buffer
	lines int
}

func (s *warnSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines += bytes.Count(p, []byte{'\n'})
	if bytes.Contains(p, []byte(`"level":"WARN"`)) || bytes.Contains(p, []byte(`"level":"ERROR"`)) {
		s.kept.Write(p)
	}
	return len(p), nil
}

func (s *warnSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kept.String()
}

// count returns how many kept lines contain sub.
func (s *warnSink) count(sub string) int {
	n := 0
	for _, l := range strings.Split(s.String(), "\n") {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

// nopResponseWriter is the cheapest ResponseWriter: for driving a handler a
// million times without a network.
type nopResponseWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *nopResponseWriter) Header() http.Header { return w.h }

func (w *nopResponseWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

func (w *nopResponseWriter) WriteHeader(code int) { w.code = code }

func (w *nopResponseWriter) reset() { clear(w.h); w.code, w.n = 0, 0 }

// workHandler is a small service behind the middleware: one route, one log
// line per request (so the logs signal has records), a short body.
func workHandler() http.Handler {
	mux := http.NewServeMux()
	body := []byte(`{"ok":true}`)
	mux.HandleFunc("GET /work/{id}", func(w http.ResponseWriter, r *http.Request) {
		slog.InfoContext(r.Context(), "work done", "id", r.PathValue("id"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	return middleware.HTTP(mux)
}

// driver sends requests straight to ServeHTTP.
type driver struct {
	h   http.Handler
	req *http.Request
	w   *nopResponseWriter
}

func newDriver(h http.Handler) *driver {
	req := httptest.NewRequest("GET", "/work/42", nil)
	req.RemoteAddr = "127.0.0.1:40000"
	return &driver{h: h, req: req, w: &nopResponseWriter{h: http.Header{}}}
}

// serve sends n requests and fails on a non-200.
func (d *driver) serve(t testing.TB, n int) {
	for i := 0; i < n; i++ {
		d.w.reset()
		d.h.ServeHTTP(d.w, d.req)
		if d.w.code != 0 && d.w.code != 200 {
			t.Fatalf("request %d: status %d", i, d.w.code)
		}
	}
}

// serveUntilExported sends full batches of requests (600: a batch of spans
// and one of log records, each), pausing between them, until the span and
// the log exporter have both been called (their call counts), and fails
// after 10s.
func (d *driver) serveUntilExported(t testing.TB, spans, logs *atomic.Int32, pause time.Duration) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for spans.Load() == 0 || logs.Load() == 0 {
		d.serve(t, 600)
		if time.Now().After(deadline) {
			t.Fatalf("exporters never called: spans %d, logs %d", spans.Load(), logs.Load())
		}
		time.Sleep(pause)
	}
}

// timed sends n requests, returning each one's latency.
func (d *driver) timed(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		d.w.reset()
		start := time.Now()
		d.h.ServeHTTP(d.w, d.req)
		out[i] = time.Since(start)
	}
	return out
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func median(ds []time.Duration) time.Duration { return quantile(ds, 0.5) }

// scrapeHandler reads /metrics through the admin handler.
func scrapeHandler(t testing.TB, obs *observe.Observer) string {
	t.Helper()
	rec := httptest.NewRecorder()
	obs.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body.String())
	}
	return rec.Body.String()
}

// metricValue finds the sample of name whose labels contain every one of
// labels (`signal="traces"`), in Prometheus text.
func metricValue(body, name string, labels ...string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err == nil {
			return v, true
		}
	}
	return 0, false
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// shutdownWithin shuts obs down with the deadline d and returns how long it
// took. When it overruns the deadline by far, the goroutines still running
// at that moment are kept in lastOverrun, to say what held it.
func shutdownWithin(obs *observe.Observer, d time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	dump := time.AfterFunc(d+150*time.Millisecond, func() {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		overrunMu.Lock()
		lastOverrun = string(buf)
		overrunMu.Unlock()
	})
	defer dump.Stop()
	start := time.Now()
	err := obs.Shutdown(ctx)
	return time.Since(start), err
}

var (
	overrunMu   sync.Mutex
	lastOverrun string
)

// overrunStacks returns (and forgets) the goroutines of the last Shutdown
// that overran its deadline, those of observe and OpenTelemetry only.
func overrunStacks() string {
	overrunMu.Lock()
	s := lastOverrun
	lastOverrun = ""
	overrunMu.Unlock()
	var keep []string
	for _, g := range strings.Split(s, "\n\n") {
		if strings.Contains(g, "observekit") || strings.Contains(g, "opentelemetry") || strings.Contains(g, "grpc") {
			keep = append(keep, g)
		}
	}
	return strings.Join(keep, "\n\n")
}

// fdCount counts this process's open file descriptors.
func fdCount(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// fdList names this process's open file descriptors (for a failure
// message), TCP sockets with their addresses.
func fdList() string {
	socks := tcpSockets()
	ents, _ := os.ReadDir("/proc/self/fd")
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		b.WriteString(e.Name() + " -> " + target)
		if strings.HasPrefix(target, "socket:[") {
			if addr, ok := socks[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")]; ok {
				b.WriteString(" " + addr)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// tcpSockets maps socket inodes to "local → remote" (IPv4 and IPv6 ports).
func tcpSockets() map[string]string {
	out := map[string]string{}
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 {
				continue
			}
			port := func(a string) string {
				_, p, _ := strings.Cut(a, ":")
				n, _ := strconv.ParseUint(p, 16, 16)
				return strconv.FormatUint(n, 10)
			}
			out[fs[9]] = ":" + port(fs[1]) + " → :" + port(fs[2]) + " st=" + fs[3]
		}
	}
	return out
}

var _ = io.Discard
