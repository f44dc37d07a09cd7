package logging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

var serviceFields = []slog.Attr{
	slog.String("service.name", "checkout"),
	slog.String("service.version", "1.2.3"),
	slog.String("deployment.environment", "prod"),
}

func TestLineShape(t *testing.T) {
	log, _, lb := newTest(Options{Fields: serviceFields})
	log.InfoContext(spanContext(true), "order placed", "order_id", 42, "total", 9.5)
	line := lb.lines()[0]
	want := []string{"time", "level", "msg", "service.name", "service.version", "deployment.environment", "trace_id", "span_id", "order_id", "total"}
	if got := keysInOrder(t, line); !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v\n%s", got, want, line)
	}
	m := decodeLine(t, line)
	ts, err := time.Parse(time.RFC3339Nano, m["time"].(string))
	if err != nil || ts.Location() != time.UTC || !strings.HasSuffix(m["time"].(string), "Z") {
		t.Errorf("time %q is not RFC 3339 UTC (%v)", m["time"], err)
	}
	if m["level"] != "INFO" || m["msg"] != "order placed" || m["service.name"] != "checkout" ||
		m["service.version"] != "1.2.3" || m["deployment.environment"] != "prod" {
		t.Errorf("header fields wrong: %s", line)
	}
	if m["trace_id"] != testTraceID.String() || m["span_id"] != testSpanID.String() {
		t.Errorf("trace_id/span_id wrong: %s", line)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(m["trace_id"].(string)) || !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(m["span_id"].(string)) {
		t.Errorf("ids not lower hex: %s", line)
	}
}

func TestLevelsSpelledAsContract(t *testing.T) {
	log, _, lb := newTest(Options{Levels: NewLevelController(slog.LevelDebug)})
	log.Debug("d")
	log.Info("i")
	log.Warn("w")
	log.Error("e")
	var got []string
	for _, r := range lb.records(t) {
		got = append(got, r["level"].(string))
	}
	if !slices.Equal(got, []string{"DEBUG", "INFO", "WARN", "ERROR"}) {
		t.Fatalf("levels %v", got)
	}
}

func TestUnknownServiceFieldsLeftOut(t *testing.T) {
	log, _, lb := newTest(Options{Fields: []slog.Attr{
		slog.String("service.name", "svc"), slog.String("service.version", ""), slog.String("deployment.environment", ""),
	}})
	log.Info("x")
	m := lb.records(t)[0]
	if _, ok := m["service.version"]; ok {
		t.Errorf("empty service.version written: %v", m)
	}
	if _, ok := m["deployment.environment"]; ok {
		t.Errorf("empty deployment.environment written: %v", m)
	}
}

func TestTraceIDsForSampledAndUnsampledSpans(t *testing.T) {
	for _, sampled := range []bool{true, false} {
		log, _, lb := newTest(Options{})
		log.InfoContext(spanContext(sampled), "x")
		m := lb.records(t)[0]
		if m["trace_id"] != testTraceID.String() || m["span_id"] != testSpanID.String() {
			t.Errorf("sampled=%v: ids missing: %v", sampled, m)
		}
	}
	log, _, lb := newTest(Options{})
	log.InfoContext(context.Background(), "no span")
	log.Info("no context")
	for _, m := range lb.records(t) {
		if _, ok := m["trace_id"]; ok {
			t.Errorf("trace_id without a span: %v", m)
		}
	}
}

func TestNoDuplicateKeysLaterWins(t *testing.T) {
	log, _, lb := newTest(Options{Fields: serviceFields})
	l := log.With("user", "a", "region", "eu")
	l = l.With("user", "b")
	l.Info("m", "user", "c", "k", 1, "k", 2, "region", "us")
	m := lb.records(t)[0]
	if m["user"] != "c" || fmt.Sprint(m["k"]) != "2" || m["region"] != "us" {
		t.Errorf("later attribute must win: %v", m)
	}
	// More than the fast path tracks, with a repeat at the end.
	var args []any
	for i := 0; i < 20; i++ {
		args = append(args, fmt.Sprintf("k%d", i), i)
	}
	args = append(args, "k3", "last")
	lb.Reset()
	log.Info("many", args...)
	m = lb.records(t)[0]
	if m["k3"] != "last" || fmt.Sprint(m["k19"]) != "19" {
		t.Errorf("20 attributes: %v", m)
	}
}

func TestReservedKeysRenamed(t *testing.T) {
	log, _, lb := newTest(Options{Fields: serviceFields})
	log.With("msg", "bound").InfoContext(spanContext(true), "real",
		"time", "t", "level", "l", "trace_id", "x", "service.name", "evil", "logger", "lg", "sample_rate", 3)
	m := lb.records(t)[0]
	if m["msg"] != "real" || m["service.name"] != "checkout" || m["trace_id"] != testTraceID.String() || m["level"] != "INFO" {
		t.Errorf("header overwritten: %v", m)
	}
	for _, k := range []string{"msg", "time", "level", "trace_id", "service.name", "logger", "sample_rate"} {
		if _, ok := m["attr."+k]; !ok {
			t.Errorf("attr.%s missing: %v", k, m)
		}
	}
}

func TestWithAttrsEncodedOnce(t *testing.T) {
	red := &upperRedactor{}
	log, _, lb := newTest(Options{Redactor: red})
	var resolved int
	l := log.With("v", valuer(func() slog.Value { resolved++; return slog.StringValue("x") }))
	for i := 0; i < 5; i++ {
		l.Info("m")
	}
	if resolved != 1 {
		t.Errorf("With attribute resolved %d times, want once", resolved)
	}
	if red.calls() != 1 {
		t.Errorf("With attribute redacted %d times, want once", red.calls())
	}
	for _, m := range lb.records(t) {
		if m["v"] != "x" {
			t.Fatalf("bound attribute lost: %v", m)
		}
	}
}

type valuer func() slog.Value

func (v valuer) LogValue() slog.Value { return v() }

func TestGroups(t *testing.T) {
	log, _, lb := newTest(Options{})
	log.With("a", 1).WithGroup("req").With("id", "r1").WithGroup("empty").Info("m", "x", 1)
	log.With("a", 1).WithGroup("req").With("id", "r1").WithGroup("empty").Info("no attrs")
	log.Info("inline", slog.Group("", "p", 1, "q", 2), slog.Group("g", "z", 1, "z", 2), slog.Group("none"))
	lines := lb.lines()
	if !strings.Contains(lines[0], `"a":1,"req":{"id":"r1","empty":{"x":1}}}`) {
		t.Errorf("nested groups: %s", lines[0])
	}
	if !strings.Contains(lines[1], `"a":1,"req":{"id":"r1"}}`) {
		t.Errorf("empty group kept: %s", lines[1])
	}
	if !strings.Contains(lines[2], `"p":1,"q":2,"g":{"z":2}}`) || strings.Contains(lines[2], "none") {
		t.Errorf("inline/dedup/empty groups: %s", lines[2])
	}
	lb.records(t)
}

func TestTextFormat(t *testing.T) {
	log, _, lb := newTest(Options{Format: "text", Fields: serviceFields})
	log.WithGroup("req").InfoContext(spanContext(false), "hello world", "id", 7, "path", "/a b")
	line := lb.lines()[0]
	for _, want := range []string{"level=INFO", `msg="hello world"`, "service.name=checkout", "trace_id=" + testTraceID.String(), "req.id=7", `req.path="/a b"`} {
		if !strings.Contains(line, want) {
			t.Errorf("text line lacks %q: %s", want, line)
		}
	}
	if !strings.HasPrefix(line, "time=") {
		t.Errorf("text line: %s", line)
	}
}

// pkg/errors-style error: StackTrace returns a named type this package
// cannot name, formatted with %+v.
type pkgStack []uintptr

func (s pkgStack) Format(st fmt.State, verb rune) {
	frames := runtime.CallersFrames(s)
	for {
		f, more := frames.Next()
		fmt.Fprintf(st, "\n%s\n\t%s:%d", f.Function, f.File, f.Line)
		if !more {
			return
		}
	}
}

type stackErr struct {
	msg   string
	stack pkgStack
}

func (e *stackErr) Error() string        { return e.msg }
func (e *stackErr) StackTrace() pkgStack { return e.stack }

func newStackErr(msg string) error {
	pcs := make([]uintptr, 16)
	n := runtime.Callers(1, pcs)
	return &stackErr{msg: msg, stack: pkgStack(pcs[:n])}
}

func TestErrorsRenderedWithMessageAndStack(t *testing.T) {
	log, _, lb := newTest(Options{})
	log.Error("plain", "err", errors.New("boom"))
	wrapped := fmt.Errorf("handling order: %w", newStackErr("db timeout"))
	log.Error("with stack", "err", wrapped)
	log.With("cause", newStackErr("bound")).Error("bound stack")
	log.Error("grouped", slog.Group("op", "err", newStackErr("in group")))
	recs := lb.records(t)
	if recs[0]["err"] != "boom" {
		t.Errorf("plain error: %v", recs[0])
	}
	if _, ok := recs[0]["err.stack"]; ok {
		t.Errorf("stack for an error without one: %v", recs[0])
	}
	if recs[1]["err"] != "handling order: db timeout" {
		t.Errorf("wrapped error message: %v", recs[1])
	}
	st, _ := recs[1]["err.stack"].(string)
	if !strings.Contains(st, "newStackErr") || !strings.Contains(st, "handler_test.go:") {
		t.Errorf("err.stack lacks the frames: %q", st)
	}
	if recs[2]["cause"] != "bound" || !strings.Contains(fmt.Sprint(recs[2]["cause.stack"]), "newStackErr") {
		t.Errorf("bound error with stack: %v", recs[2])
	}
	op, _ := recs[3]["op"].(map[string]any)
	if op["err"] != "in group" || !strings.Contains(fmt.Sprint(op["err.stack"]), "newStackErr") {
		t.Errorf("error with stack in a group: %v", recs[3])
	}
}

type pcErr struct{}

func (pcErr) Error() string { return "pc" }
func (pcErr) StackTrace() []uintptr {
	pcs := make([]uintptr, 8)
	return pcs[:runtime.Callers(1, pcs)]
}

type byteStackErr struct{}

func (byteStackErr) Error() string { return "bytes" }
func (byteStackErr) Stack() []byte { return []byte("goroutine 1 [running]:\nmain.main()") }

func TestErrorStackConventions(t *testing.T) {
	log, _, lb := newTest(Options{})
	log.Error("a", "err", pcErr{})
	log.Error("b", "err", byteStackErr{})
	recs := lb.records(t)
	if !strings.Contains(fmt.Sprint(recs[0]["err.stack"]), "pcErr.StackTrace") {
		t.Errorf("[]uintptr stack: %v", recs[0])
	}
	if !strings.Contains(fmt.Sprint(recs[1]["err.stack"]), "goroutine 1") {
		t.Errorf("Stack() []byte: %v", recs[1])
	}
}

func TestRedactionEverywhereOnce(t *testing.T) {
	red := &upperRedactor{}
	log, _, lb := newTest(Options{Redactor: red})
	log.With("password", "hunter2").Info("the secret is out",
		"note", "my secret", "db_password", "pw",
		slog.Group("g", "password", "x", "deep", "secret"),
		"err", errors.New("secret failure"))
	line := lb.lines()[0]
	if strings.Contains(line, "hunter2") || strings.Contains(line, "secret") || strings.Contains(line, `"pw"`) || strings.Contains(line, `"x"`) {
		t.Fatalf("not redacted: %s", line)
	}
	// 1 bound + 4 record attributes, each redacted exactly once.
	if red.calls() != 5 {
		t.Errorf("redactor called %d times, want 5", red.calls())
	}
	// The slow path (a repeated key) must not redact twice either.
	red2 := &upperRedactor{}
	log2, _, _ := newTest(Options{Redactor: red2})
	log2.Info("m", "a", 1, "b", 2, "a", 3)
	if red2.calls() != 3 {
		t.Errorf("slow path: redactor called %d times, want 3", red2.calls())
	}
}

func TestAuditBypassesLevel(t *testing.T) {
	_, h, lb := newTest(Options{Levels: NewLevelController(slog.LevelError)})
	h.Audit(context.Background(), "log level changed", slog.String("who", "127.0.0.1"))
	m := lb.records(t)
	if len(m) != 1 || m[0]["level"] != "WARN" || m[0]["who"] != "127.0.0.1" {
		t.Fatalf("audit line: %v", m)
	}
}

func TestHandlerConcurrentUse(t *testing.T) {
	log, _, lb := newTest(Options{})
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			l := log.With("g", g)
			for i := 0; i < 200; i++ {
				l.Info("m", "i", i)
			}
		}()
	}
	for g := 0; g < 8; g++ {
		<-done
	}
	if n := len(lb.records(t)); n != 1600 {
		t.Fatalf("%d lines, want 1600", n)
	}
}

func TestDefaultsDiscard(t *testing.T) {
	h := New(Options{})
	if err := h.Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelInfo, "x", 0)); err != nil {
		t.Fatal(err)
	}
	if !h.Enabled(context.Background(), slog.LevelInfo) || h.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("default level is not INFO")
	}
}
