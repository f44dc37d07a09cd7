package logging

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe/internal/accesslog"
	"github.com/observekit/observe/redact"
	"go.opentelemetry.io/otel/trace"
)

func accessCtx() context.Context {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	return trace.ContextWithSpanContext(context.Background(), sc)
}

// recordLine is the access line as the record path writes it.
func recordHTTPLine(h slog.Handler, end time.Time, l accesslog.HTTP) {
	r := slog.NewRecord(end, slog.LevelInfo, "request", 0)
	r.AddAttrs(
		slog.String("http.request.method", l.Method),
		slog.String("http.route", l.Route),
		slog.String("url.path", l.Path),
		slog.Int("http.response.status_code", l.Status),
		slog.Float64("duration_ms", durationMS(l.Dur)),
		slog.Int64("http.response.body.size", l.Size),
	)
	_ = h.Handle(accessCtx(), r)
}

func recordRPCLine(h slog.Handler, end time.Time, l accesslog.RPC) {
	r := slog.NewRecord(end, slog.LevelInfo, "rpc", 0)
	r.AddAttrs(
		slog.String("rpc.system", "grpc"),
		slog.String("rpc.method", l.Method),
		slog.String("rpc.response.status_code", l.Code),
		slog.Float64("duration_ms", durationMS(l.Dur)),
	)
	_ = h.Handle(accessCtx(), r)
}

// The direct access lines are byte for byte the lines the record path
// writes, redaction of client input included, in both formats.
func TestAccessLineSameBytes(t *testing.T) {
	end := time.Date(2026, 12, 6, 20, 1, 2, 345678000, time.UTC)
	lines := []accesslog.HTTP{
		{Method: "GET", Route: "/users/{id}", Path: "/users/42", Status: 200, Dur: 1234567 * time.Nanosecond, Size: 17},
		{Method: "BREW", Route: "", Path: "/reset/alice@example.com", Status: 404, Dur: time.Millisecond, Size: 0},
		{Method: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2ln", Route: "/x", Path: "/\"quoted\"\n\x00", Status: 500, Dur: 3 * time.Second, Size: 1 << 40},
	}
	rpcs := []accesslog.RPC{{Method: "pkg.Svc/Get", Code: "OK", Dur: 1500 * time.Microsecond}, {Method: "_OTHER", Code: "NOT_FOUND"}}
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			pol, err := redact.New()
			if err != nil {
				t.Fatal(err)
			}
			var direct, record lineBuffer
			opts := func(w *lineBuffer) Options {
				return Options{Writer: w, Format: format, Redactor: pol, Fields: []slog.Attr{slog.String("service.name", "svc")}}
			}
			hd := New(opts(&direct)).WithName("observe.access")
			hr := New(opts(&record)).WithName("observe.access")
			for _, l := range lines {
				if !accesslog.WriteHTTP(accessCtx(), hd, end, l) {
					t.Fatalf("direct HTTP line refused for %+v", l)
				}
				recordHTTPLine(hr, end, l)
			}
			for _, l := range rpcs {
				if !accesslog.WriteRPC(accessCtx(), hd, end, l) {
					t.Fatalf("direct RPC line refused for %+v", l)
				}
				recordRPCLine(hr, end, l)
			}
			if direct.String() != record.String() {
				t.Fatalf("direct lines differ from the record path's:\ndirect:\n%s\nrecord:\n%s", direct.String(), record.String())
			}
			if strings.Contains(direct.String(), "alice@example.com") || strings.Contains(direct.String(), "eyJzdWIiOiIxIn0") {
				t.Fatalf("client input not redacted:\n%s", direct.String())
			}
			if format == "json" {
				direct.records(t) // valid JSON, no key twice
			}
		})
	}
}

// Where the record path does something the direct path does not, the
// direct path declines and the caller builds a record.
func TestAccessLineDeclines(t *testing.T) {
	l := accesslog.HTTP{Method: "GET", Route: "/", Path: "/", Status: 200}
	pathKey, _ := redact.New(redact.WithKeys("path"))
	cases := map[string]slog.Handler{
		"sampling":               New(Options{Writer: &lineBuffer{}, Sampling: SampleRates{Info: 0.5}}),
		"a sensitive key":        New(Options{Writer: &lineBuffer{}, Redactor: pathKey}),
		"a redactor that panics": New(Options{Writer: &lineBuffer{}, Redactor: panickyRedactor{}}),
		"bound attributes":       New(Options{Writer: &lineBuffer{}}).WithAttrs([]slog.Attr{slog.String("k", "v")}),
		"a group":                New(Options{Writer: &lineBuffer{}}).WithGroup("g"),
		"another handler":        slog.NewJSONHandler(&lineBuffer{}, nil),
	}
	for name, h := range cases {
		if accesslog.WriteHTTP(context.Background(), h, time.Now(), l) {
			t.Errorf("%s: the direct path wrote the line", name)
		}
	}
	if !accesslog.WriteHTTP(context.Background(), New(Options{Writer: &lineBuffer{}}), time.Now(), l) {
		t.Error("a plain handler: the direct path declined")
	}
}

// panickyRedactor panics on every string: a policy with a bug.
type panickyRedactor struct{}

func (panickyRedactor) String(string) string       { panic("redactor bug") }
func (panickyRedactor) Attr(a slog.Attr) slog.Attr { return a }
func (panickyRedactor) IsSensitiveKey(string) bool { return false }
