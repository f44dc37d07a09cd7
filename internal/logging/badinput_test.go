package logging

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

type panicMarshal struct{}

func (panicMarshal) MarshalJSON() ([]byte, error) { panic("marshal exploded") }

type failMarshal struct{}

func (failMarshal) MarshalJSON() ([]byte, error) { return nil, errors.New("cannot marshal") }

type badJSON struct{}

func (badJSON) MarshalJSON() ([]byte, error) { return []byte(`{"unterminated`), nil }

type panicText struct{}

func (panicText) MarshalText() ([]byte, error) { panic("text exploded") }

type panicError struct{}

func (panicError) Error() string { panic("Error exploded") }

type panicValuer struct{}

func (panicValuer) LogValue() slog.Value { panic("LogValue exploded") }

type selfValuer struct{}

func (s selfValuer) LogValue() slog.Value { return slog.AnyValue(s) }

// groupLoop returns a group that holds itself: infinite nesting.
type groupLoop struct{}

func (g groupLoop) LogValue() slog.Value {
	return slog.GroupValue(slog.Any("again", g), slog.Int("n", 1))
}

type cyclic struct {
	Name string
	Next *cyclic
}

type nested struct {
	Inner struct{ Password, Note string }
	Ch    chan int `json:"-"`
}

type panicRedactor struct{}

func (panicRedactor) String(s string) string {
	if strings.Contains(s, "boom") {
		panic("redactor exploded")
	}
	return s
}
func (panicRedactor) Attr(a slog.Attr) slog.Attr {
	if a.Key == "boom" {
		panic("redactor exploded")
	}
	return a
}

func TestBadInputNeverBreaksLogging(t *testing.T) {
	log, _, lb := newTest(Options{MaxValueBytes: 64})
	loop := &cyclic{Name: "a"}
	loop.Next = loop
	invalid := "caf\xe9 \xff\xfe ok"
	log.Info(invalid, invalid, invalid, "k", []byte("\xff\x00bytes"))
	log.Info("huge", "v", strings.Repeat("x", 1000), strings.Repeat("k", 200), 1)
	log.Info("marshal",
		"panics", panicMarshal{},
		"fails", failMarshal{},
		"bad", badJSON{},
		"text", panicText{},
		"err", panicError{},
		"func", func() {},
		"chan", make(chan int),
		"nan", math.NaN(),
		"inf", math.Inf(-1),
		"nanInStruct", struct{ F float64 }{math.NaN()},
		"cycle", loop,
		"complex", complex(1, 2),
	)
	log.Info("valuers", "panics", panicValuer{}, "recurses", selfValuer{}, "loop", groupLoop{})
	log.With("bound", panicValuer{}).WithGroup("g").With("gl", groupLoop{}).Info("bound bad")
	log.Info("nil things", "nilerr", error(nil), "nilptr", (*cyclic)(nil), "nilany", nil)
	log.Info("control \x00\x1b[31m chars\u2028", "k\"ey", "v\\al")

	lines := lb.lines()
	if len(lines) != 7 {
		t.Fatalf("%d lines, want 7:\n%s", len(lines), lb.String())
	}
	for _, l := range lines {
		if !utf8.ValidString(l) {
			t.Errorf("invalid UTF-8 written: %q", l)
		}
		decodeLine(t, l) // valid JSON, no duplicate keys
	}
	recs := lb.records(t)
	if !strings.Contains(recs[0]["msg"].(string), "\uFFFD") {
		t.Errorf("invalid UTF-8 not replaced: %v", recs[0])
	}
	if v := recs[1]["v"].(string); !strings.HasSuffix(v, truncMarker) || len(v) > 64+len(truncMarker) {
		t.Errorf("huge value not truncated at 64 bytes: %d bytes", len(v))
	}
	m := recs[2]
	for _, k := range []string{"panics", "text", "err"} {
		if !strings.Contains(fmt.Sprint(m[k]), "PANIC") {
			t.Errorf("%s: %v", k, m[k])
		}
	}
	for _, k := range []string{"fails", "bad", "func", "chan", "nanInStruct", "cycle"} {
		if !strings.Contains(fmt.Sprint(m[k]), "ERROR") {
			t.Errorf("%s: %v", k, m[k])
		}
	}
	if m["nan"] != "NaN" || m["inf"] != "-Inf" {
		t.Errorf("NaN/Inf: %v %v", m["nan"], m["inf"])
	}
	v := recs[3]
	if !strings.Contains(fmt.Sprint(v["panics"]), "panic") || !strings.Contains(fmt.Sprint(v["recurses"]), "too many") {
		t.Errorf("valuers: %v", v)
	}
	if !strings.Contains(lines[3], depthMarker) || !strings.Contains(lines[4], depthMarker) {
		t.Errorf("self-nesting group not cut: %s / %s", lines[3], lines[4])
	}
}

func TestHugeValueLimitConfigurable(t *testing.T) {
	big := strings.Repeat("é", 20000) // 40000 bytes, two per rune
	for _, tc := range []struct {
		max  int
		want int // bytes of the value before the marker; -1: not cut
	}{{0, defaultMaxValueBytes}, {101, 100}, {-1, -1}} {
		log, _, lb := newTest(Options{MaxValueBytes: tc.max})
		log.Info("m", "v", big)
		v := lb.records(t)[0]["v"].(string)
		if tc.want < 0 {
			if v != big {
				t.Errorf("max %d: value changed", tc.max)
			}
			continue
		}
		if !strings.HasSuffix(v, truncMarker) || len(strings.TrimSuffix(v, truncMarker)) != tc.want || !utf8.ValidString(v) {
			t.Errorf("max %d: %d bytes, cut mid-rune or unmarked", tc.max, len(v))
		}
	}
}

func TestPanickingRedactorContained(t *testing.T) {
	log, _, lb := newTest(Options{Redactor: panicRedactor{}})
	log.Info("fine", "boom", 1)
	log.Info("boom message")
	log.Info("after")
	lines := lb.lines()
	if len(lines) != 3 {
		t.Fatalf("lines: %v", lines)
	}
	r0, r1 := decodeLine(t, lines[0]), decodeLine(t, lines[1])
	if r0["msg"] != "fine" || !strings.Contains(fmt.Sprint(r0["logging.error"]), "redactor exploded") {
		t.Errorf("attr panic: %s", lines[0])
	}
	if strings.Contains(lines[1], "boom message") || r1["logging.error"] == nil {
		t.Errorf("message panic must withhold the message: %s", lines[1])
	}
	if decodeLine(t, lines[2])["msg"] != "after" {
		t.Error("logging broken after a panic")
	}
}

func TestTextFormatBadInput(t *testing.T) {
	log, _, lb := newTest(Options{Format: "text", MaxValueBytes: 16})
	log.Info("bad \xff", "k\xff", "v\xff", "big", strings.Repeat("y", 100), "p", panicMarshal{}, "s", nested{})
	line := lb.lines()[0]
	if !utf8.ValidString(line) || strings.Count(line, "\n") != 0 || !strings.Contains(line, truncMarker) {
		t.Errorf("text line: %q", line)
	}
}

func TestPanickingRedactorInWithAttrsAndStage(t *testing.T) {
	// Writer only: WithAttrs redacts now and must not take the caller down.
	log, _, lb := newTest(Options{Redactor: panicRedactor{}})
	log.With("boom", "x", "ok", 1).Info("bound")
	m := lb.records(t)[0]
	if m["boom"] != withheld || fmt.Sprint(m["ok"]) != "1" {
		t.Errorf("With with a panicking redactor: %v", m)
	}
	// With export: the redaction stage before the fanout.
	log2, _, lb2, exp := newExportTest(Options{Redactor: panicRedactor{}})
	log2.With("boom", 1).Info("boom in the message", "boom", 2, "fine", 3)
	recs := exp.all()
	lines := lb2.records(t)
	if len(recs) != 1 || len(lines) != 1 {
		t.Fatalf("%d records, %d lines", len(recs), len(lines))
	}
	if strings.Contains(lb2.String(), "boom in the message") || strings.Contains(recs[0].Body().AsString(), "boom in the message") {
		t.Error("message whose redaction panicked was written")
	}
	if lines[0]["boom"] != withheld || attrs(recs[0])["boom"] != withheld || attrs(recs[0])["fine"] != "3" {
		t.Errorf("line %v, record %v", lines[0], attrs(recs[0]))
	}
}

type panickyWriter struct{ calls int }

func (w *panickyWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.calls%2 == 1 {
		panic("writer exploded")
	}
	return len(p), nil
}

func TestPanickingWriterContained(t *testing.T) {
	w := &panickyWriter{}
	log := slog.New(New(Options{Writer: w}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 4; i++ {
			log.Info("m", "i", i) // must neither panic nor deadlock
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a panicking Writer left the lock held")
	}
	if w.calls < 4 {
		t.Errorf("writer called %d times", w.calls)
	}
}
