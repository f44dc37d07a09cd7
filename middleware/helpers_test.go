package middleware_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/observekit/observe/internal/metrics"
	"github.com/observekit/observe/internal/tracing"
	"github.com/observekit/observe/internal/wiring"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// testEnv is observe's tracing and metrics set up the way Init does, with
// spans kept in process and log records captured.
type testEnv struct {
	tp   *tracing.Provider
	m    *metrics.Metrics
	logs *logCapture
}

func setup(t testing.TB, sampler ...string) *testEnv {
	t.Helper()
	cfg := tracing.Config{StoreSize: 10000}
	if len(sampler) > 0 {
		s, err := tracing.NewSampler(sampler[0], "")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Sampler = s
	}
	tp, err := tracing.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := metrics.New(metrics.Config{DisableRuntimeCollectors: true})
	if err != nil {
		t.Fatal(err)
	}
	prop, err := tracing.NewPropagator([]string{"tracecontext", "baggage", "b3"})
	if err != nil {
		t.Fatal(err)
	}
	prevProp := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(prop)
	wiring.Tracing.Store(tp)
	wiring.Metrics.Store(m)
	lc := &logCapture{}
	prevLog := slog.Default()
	slog.SetDefault(slog.New(lc))
	t.Cleanup(func() {
		wiring.Tracing.Store(nil)
		wiring.Metrics.Store(nil)
		otel.SetTextMapPropagator(prevProp)
		slog.SetDefault(prevLog)
		_ = tp.Shutdown(context.Background())
	})
	return &testEnv{tp: tp, m: m, logs: lc}
}

// spans returns the finished spans, waiting up to 5s for at least n.
func (e *testEnv) spans(t testing.TB, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := e.tp.Store().Spans()
		if len(s) >= n || time.Now().After(deadline) {
			if len(s) < n {
				t.Fatalf("want %d finished spans, have %d: %v", n, len(s), names(s))
			}
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *testEnv) span(t testing.TB, kind trace.SpanKind) sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, s := range e.tp.Store().Spans() {
			if s.SpanKind() == kind {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished %v span: %v", kind, names(e.tp.Store().Spans()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metric returns the text exposition of the named metric family.
func (e *testEnv) metric(t testing.TB, name string) string {
	t.Helper()
	mfs, err := e.m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					b.WriteString(l.GetName() + "=" + l.GetValue() + ",")
				}
				if h := m.GetHistogram(); h != nil {
					b.WriteString(" count=" + itoa(h.GetSampleCount()))
				}
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}

// metricWith polls metric until it contains want (5s at most) and returns
// it: a server records a call's metric just after it ends the call's span
// (tail sampling decides at the end whether the span may be an exemplar),
// so a test that waited for the span may be a moment early.
func (e *testEnv) metricWith(t testing.TB, name, want string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := e.metric(t, name)
		if strings.Contains(got, want) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func itoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.SpanKind().String()+":"+s.Name())
	}
	return out
}

func attrs(s sdktrace.ReadOnlySpan) map[string]attribute.Value {
	m := map[string]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

func wantAttr(t testing.TB, s sdktrace.ReadOnlySpan, key string, want any) {
	t.Helper()
	v, ok := attrs(s)[key]
	if !ok {
		t.Errorf("span %q lacks %s (has %v)", s.Name(), key, s.Attributes())
		return
	}
	switch w := want.(type) {
	case string:
		if v.Type() != attribute.STRING || v.AsString() != w {
			t.Errorf("span %q: %s = %s, want %q", s.Name(), key, v.Emit(), w)
		}
	case int:
		if v.Type() != attribute.INT64 || v.AsInt64() != int64(w) {
			t.Errorf("span %q: %s = %s, want %d", s.Name(), key, v.Emit(), w)
		}
	case []string:
		if v.Type() != attribute.STRINGSLICE || strings.Join(v.AsStringSlice(), "|") != strings.Join(w, "|") {
			t.Errorf("span %q: %s = %s, want %v", s.Name(), key, v.Emit(), w)
		}
	}
}

func noAttr(t testing.TB, s sdktrace.ReadOnlySpan, key string) {
	t.Helper()
	if v, ok := attrs(s)[key]; ok {
		t.Errorf("span %q has %s = %s", s.Name(), key, v.Emit())
	}
}

// logCapture is a slog.Handler keeping records and the span context of
// their context, as observe's logging handler would stamp trace_id.
type logCapture struct {
	mu      sync.Mutex
	records []capturedLog
}

type capturedLog struct {
	level slog.Level
	msg   string
	attrs map[string]string
	sc    trace.SpanContext
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (l *logCapture) Handle(ctx context.Context, r slog.Record) error {
	c := capturedLog{level: r.Level, msg: r.Message, attrs: map[string]string{}, sc: trace.SpanContextFromContext(ctx)}
	r.Attrs(func(a slog.Attr) bool {
		c.attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	l.records = append(l.records, c)
	l.mu.Unlock()
	return nil
}

func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }

func (l *logCapture) find(msg string) (capturedLog, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if r.msg == msg {
			return r, true
		}
	}
	return capturedLog{}, false
}
