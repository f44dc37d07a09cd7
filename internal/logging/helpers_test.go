package logging

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/observekit/observe/internal/testbackend"
	"go.opentelemetry.io/otel/trace"
)

// lineBuffer collects lines, safe for concurrent writers.
type lineBuffer struct{ testbackend.LockedBuffer }

// lines returns the non-empty lines written so far.
func (lb *lineBuffer) lines() []string { return lb.Lines() }

// records decodes every line, failing on invalid JSON or a repeated key.
func (lb *lineBuffer) records(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range lb.lines() {
		out = append(out, decodeLine(t, l))
	}
	return out
}

// decodeLine decodes one JSON line, failing on a key that appears twice at
// any depth.
func decodeLine(t testing.TB, line string) map[string]any {
	t.Helper()
	if err := checkNoDupKeys(line); err != nil {
		t.Fatalf("%v in line %s", err, line)
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("line is not JSON (%v): %q", err, line)
	}
	return m
}

// keysInOrder returns the top-level keys of a JSON object line, in order.
func keysInOrder(t testing.TB, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func checkNoDupKeys(s string) error {
	dec := json.NewDecoder(strings.NewReader(s))
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		d, ok := tok.(json.Delim)
		if !ok {
			return nil
		}
		switch d {
		case '{':
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k := kt.(string)
				if seen[k] {
					return fmt.Errorf("duplicate key %q", k)
				}
				seen[k] = true
				if err := walk(); err != nil {
					return err
				}
			}
		case '[':
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
		}
		_, err = dec.Token() // closing delimiter
		return err
	}
	return walk()
}

var (
	testTraceID = trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	testSpanID  = trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
)

func spanContext(sampled bool) context.Context {
	return spanContextWith(testTraceID, sampled)
}

func spanContextWith(tid trace.TraceID, sampled bool) context.Context {
	var flags trace.TraceFlags
	if sampled {
		flags = trace.FlagsSampled
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: testSpanID, TraceFlags: flags})
	return trace.ContextWithSpanContext(context.Background(), sc)
}

// newTest returns a logger writing JSON lines into a buffer.
func newTest(o Options) (*slog.Logger, *Handler, *lineBuffer) {
	lb := &lineBuffer{}
	if o.Writer == nil {
		o.Writer = lb
	}
	h := New(o)
	return slog.New(h), h, lb
}

// upperRedactor is a stand-in policy: it masks the value of any key
// containing "password" and any "secret" in strings, and counts its calls.
type upperRedactor struct {
	mu    sync.Mutex
	attrs int
}

func (r *upperRedactor) String(s string) string {
	return strings.ReplaceAll(s, "secret", "[REDACTED]")
}

func (r *upperRedactor) Attr(a slog.Attr) slog.Attr {
	r.mu.Lock()
	r.attrs++
	r.mu.Unlock()
	if strings.Contains(strings.ToLower(a.Key), "password") {
		return slog.String(a.Key, "[REDACTED]")
	}
	return r.redact(a)
}

func (r *upperRedactor) redact(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, r.String(v.String()))
	case slog.KindGroup:
		var as []slog.Attr
		for _, m := range v.Group() {
			if strings.Contains(strings.ToLower(m.Key), "password") {
				as = append(as, slog.String(m.Key, "[REDACTED]"))
				continue
			}
			as = append(as, r.redact(m))
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(as...)}
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, r.String(err.Error()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (r *upperRedactor) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attrs
}
