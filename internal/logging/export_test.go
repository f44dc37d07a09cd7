package logging

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/observekit/observe/internal/otlpexport"
	"github.com/observekit/observe/internal/wiring"
	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
)

// memExporter keeps exported records.
type memExporter struct {
	mu      sync.Mutex
	records []sdklog.Record
	fail    error
}

func (e *memExporter) Export(_ context.Context, rs []sdklog.Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return e.fail
	}
	for _, r := range rs {
		e.records = append(e.records, r.Clone())
	}
	return nil
}
func (e *memExporter) Shutdown(context.Context) error   { return nil }
func (e *memExporter) ForceFlush(context.Context) error { return nil }

func (e *memExporter) all() []sdklog.Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]sdklog.Record(nil), e.records...)
}

// attrs flattens a record's attributes into key → value text; groups become
// dotted keys.
func attrs(r sdklog.Record) map[string]string {
	out := map[string]string{}
	var walk func(prefix string, kv attribute.KeyValue)
	walk = func(prefix string, kv attribute.KeyValue) {
		k := prefix + string(kv.Key)
		if kv.Value.Type() == attribute.MAP {
			for _, m := range kv.Value.AsMap() {
				walk(k+".", m)
			}
			return
		}
		out[k] = kv.Value.Emit()
	}
	r.WalkAttributes(func(kv attribute.KeyValue) bool { walk("", kv); return true })
	return out
}

func newExportTest(o Options) (*slog.Logger, *Handler, *lineBuffer, *memExporter) {
	exp := &memExporter{}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)))
	o.LoggerProvider = lp
	log, h, lb := newTest(o)
	return log, h, lb, exp
}

func TestExportSameRecordsLevelsRedaction(t *testing.T) {
	c := NewLevelController(slog.LevelInfo)
	log, h, lb, exp := newExportTest(Options{Levels: c, Redactor: &upperRedactor{}, Fields: serviceFields})
	wiring.LogRoot.Store(h)
	t.Cleanup(func() { wiring.LogRoot.Store(nil) })
	ctx := spanContext(false)

	log.DebugContext(ctx, "hidden on both")
	log.InfoContext(ctx, "the secret plan", "password", "hunter2", "n", 3, "ok", true)
	Named("db").With("table", "orders").WarnContext(ctx, "slow", slog.Group("q", "ms", 12, "password", "pw"))
	log.ErrorContext(ctx, "failed", "err", errors.New("secret error"), "stackErr", newStackErr("with stack"))
	if _, err := c.Set("db", slog.LevelDebug, 0, nil); err != nil {
		t.Fatal(err)
	}
	Named("db.pool").DebugContext(ctx, "now visible")

	lines := lb.records(t)
	recs := exp.all()
	if len(recs) != len(lines) || len(lines) != 4 {
		t.Fatalf("%d exported, %d lines; want 4 each", len(recs), len(lines))
	}
	for i, r := range recs {
		line := lines[i]
		if r.Body().AsString() != line["msg"] {
			t.Errorf("record %d body %q, line msg %q", i, r.Body().AsString(), line["msg"])
		}
		if r.SeverityText() != line["level"] {
			t.Errorf("record %d severity %q, line %q", i, r.SeverityText(), line["level"])
		}
		if r.TraceID().String() != line["trace_id"] || r.SpanID().String() != line["span_id"] {
			t.Errorf("record %d not correlated: %s/%s", i, r.TraceID(), r.SpanID())
		}
		a := attrs(r)
		for k, v := range a {
			if strings.Contains(v, "secret") || strings.Contains(v, "hunter2") || v == "pw" {
				t.Errorf("record %d: %s=%q not redacted", i, k, v)
			}
		}
		if _, ok := a["service.name"]; ok {
			t.Errorf("service fields belong in the resource, not attributes: %v", a)
		}
	}
	if a := attrs(recs[0]); a["password"] != "[REDACTED]" || a["n"] != "3" || a["ok"] != "true" {
		t.Errorf("record 0 attrs: %v", a)
	}
	if a := attrs(recs[1]); a["logger"] != "db" || a["table"] != "orders" || a["q.ms"] != "12" || a["q.password"] != "[REDACTED]" {
		t.Errorf("record 1 attrs: %v", a)
	}
	a := attrs(recs[2])
	if a["err"] != "[REDACTED] error" || a["stackErr"] != "with stack" || !strings.Contains(a["stackErr.stack"], "newStackErr") {
		t.Errorf("errors: %v", a)
	}
	if recs[2].Severity() != otellog.SeverityError || recs[3].Severity() != otellog.SeverityDebug {
		t.Errorf("severities %v %v", recs[2].Severity(), recs[3].Severity())
	}
	if attrs(recs[3])["logger"] != "db.pool" {
		t.Errorf("record 3: %v", attrs(recs[3]))
	}
}

func TestExportSamplingAndGroups(t *testing.T) {
	log, _, lb, exp := newExportTest(Options{Levels: NewLevelController(slog.LevelDebug), Sampling: SampleRates{Debug: 0.5}})
	for i := 0; i < 200; i++ {
		log.With("a", 1).WithGroup("g").With("b", 2).Debug("d", "c", 3)
	}
	recs := exp.all()
	if len(recs) != len(lb.lines()) || len(recs) == 0 || len(recs) == 200 {
		t.Fatalf("%d exported vs %d lines", len(recs), len(lb.lines()))
	}
	a := attrs(recs[0])
	if a["sample_rate"] != "0.5" || a["a"] != "1" || a["g.b"] != "2" || a["g.c"] != "3" {
		t.Errorf("attrs %v", a)
	}
}

func TestExportBadInputStaysValid(t *testing.T) {
	log, _, _, exp := newExportTest(Options{MaxValueBytes: 32})
	log.Info("bad \xff msg", "k\xfe", "v\xff", "big", strings.Repeat("z", 100),
		"obj", struct{ A int }{1}, "panics", panicMarshal{}, "valuer", panicValuer{}, "loop", groupLoop{}, "raw", []byte{0xff})
	recs := exp.all()
	if len(recs) != 1 {
		t.Fatal("not exported")
	}
	r := recs[0]
	if !utf8.ValidString(r.Body().AsString()) {
		t.Error("invalid UTF-8 body")
	}
	a := attrs(r)
	for k, v := range a {
		if k == "raw" {
			continue
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			t.Errorf("invalid UTF-8 in %q=%q", k, v)
		}
	}
	if !strings.HasSuffix(a["big"], truncMarker) || a["obj"] != `{"A":1}` || !strings.Contains(a["panics"], "PANIC") {
		t.Errorf("attrs %v", a)
	}
}

func TestExportFailuresCounted(t *testing.T) {
	exp := &memExporter{fail: errors.New("collector down")}
	p, err := NewLoggerProvider(context.Background(), OTLPConfig{Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	log, h, lb := newTest(Options{LoggerProvider: p})
	log.Info("x")
	_ = p.ForceFlush(context.Background())
	if err := p.Shutdown(context.Background()); err != nil {
		t.Log(err)
	}
	if h.ExportFailures() == 0 || p.ExportFailures() != h.ExportFailures() {
		t.Errorf("ExportFailures = %d", h.ExportFailures())
	}
	recs := lb.records(t)
	if len(recs) != 2 || recs[0]["msg"] != "x" {
		t.Fatalf("lines: %s", lb.String())
	}
	if w := recs[1]; w["level"] != "WARN" || w["msg"] != "observe: logs export failed; log records dropped" ||
		w["signal"] != "logs" || w["error"] != "collector down" || w["logger"] != "observe.logs" {
		t.Errorf("failure line: %v", w)
	}
	if h.Dropped() != 1 || p.Dropped() != 1 || h.sampledOut() != 0 {
		t.Errorf("Dropped() = %d, want the failed record counted", h.Dropped())
	}

	if New(Options{}).ExportFailures() != 0 {
		t.Error("failures without export")
	}
}

func TestNewLoggerProviderProtocols(t *testing.T) {
	for _, e := range []otlpexport.Config{
		{},
		{Protocol: "grpc"},
		{Protocol: "grpc", Endpoint: "collector:4317", Insecure: true, Headers: map[string]string{"a": "b"}},
		{Protocol: "http/protobuf", Endpoint: "http://127.0.0.1:1/v1/logs"},
		{Protocol: "http/protobuf", Endpoint: "collector:4318", Insecure: true, Headers: map[string]string{"a": "b"}},
	} {
		c := OTLPConfig{Export: e}
		p, err := NewLoggerProvider(context.Background(), c)
		if err != nil {
			t.Errorf("%+v: %v", c, err)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 0)
		_ = p.Shutdown(ctx) // nothing buffered: returns at once
		cancel()
	}
	if _, err := NewLoggerProvider(context.Background(), OTLPConfig{Export: otlpexport.Config{Protocol: "http/json"}}); err == nil {
		t.Error("unknown protocol accepted")
	}
}

func TestExportRedactsOnceForBothWriters(t *testing.T) {
	red := &upperRedactor{}
	log, _, lb, exp := newExportTest(Options{Redactor: red})
	l := log.With("password", "p")                       // 1
	l.Info("a secret", "a", 1, "b", "secret", "c", true) // 3
	l.Info("again", "d", 4)                              // 1
	if red.calls() != 5 {
		t.Errorf("redactor called %d times for 5 attributes and two writers", red.calls())
	}
	if len(exp.all()) != 2 || len(lb.lines()) != 2 || strings.Contains(lb.String(), "secret") {
		t.Errorf("records %d, lines %s", len(exp.all()), lb.String())
	}
}
