package tracing

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// keyRedactor is a stand-in policy: keys containing a sensitive word are
// masked, and the value "s3cr3t" is detected anywhere in free text.
type keyRedactor struct{}

func sensitive(k string) bool {
	k = strings.ToLower(k)
	for _, w := range []string{"password", "token", "authorization", "api-key", "cookie"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

func (keyRedactor) String(s string) string { return strings.ReplaceAll(s, "s3cr3t", "[REDACTED:test]") }

func (r keyRedactor) KeyValue(kv attribute.KeyValue) attribute.KeyValue {
	if sensitive(string(kv.Key)) {
		if kv.Value.Type() == attribute.STRINGSLICE {
			return kv.Key.StringSlice([]string{"[REDACTED]"})
		}
		return kv.Key.String("[REDACTED]")
	}
	if kv.Value.Type() == attribute.STRING {
		if s := r.String(kv.Value.AsString()); s != kv.Value.AsString() {
			return kv.Key.String(s)
		}
	}
	return kv
}

// fullRedactor also implements the optional URL and Header methods.
type fullRedactor struct{ keyRedactor }

func (fullRedactor) URL(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User("X")
	}
	q := c.Query()
	for k := range q {
		if sensitive(k) {
			q.Set(k, "[REDACTED]")
		}
	}
	c.RawQuery = q.Encode()
	return c.String()
}

func (fullRedactor) Header(name string, values []string) []string {
	if sensitive(name) {
		return []string{"[REDACTED:header]"}
	}
	return values
}

func exportOne(t *testing.T, r Redactor, f func(trace.Span)) (exported, stored sdktrace.ReadOnlySpan) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	p, err := New(context.Background(), Config{Exporter: exporterCustom, SpanExporter: exp, Redactor: r})
	if err != nil {
		t.Fatal(err)
	}
	_, s := p.Tracer().Start(context.Background(), "op")
	f(s)
	s.End()
	stored = p.Store().Spans()[0]
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans() // before Shutdown, which empties the exporter
	defer p.Shutdown(context.Background())
	if len(spans) != 1 {
		t.Fatalf("exported %d spans", len(spans))
	}
	return spans.Snapshots()[0], stored
}

func attrMap(kvs []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

func TestRedactionBeforeExport(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Redactor
	}{{"KeyValue only", keyRedactor{}}, {"with URL and Header", fullRedactor{}}} {
		t.Run(tc.name, func(t *testing.T) {
			exported, stored := exportOne(t, tc.r, func(s trace.Span) {
				s.SetAttributes(
					attribute.String("user.password", "hunter2"),
					attribute.String("note", "the key is s3cr3t here"),
					attribute.String("url.full", "https://bob:pw@api.example.com/v1/items?id=7&access_token=abc"),
					attribute.String("url.query", "id=7&password=hunter2"),
					attribute.StringSlice("http.request.header.authorization", []string{"Bearer abc"}),
					attribute.StringSlice("http.request.header.x-request-id", []string{"r-1"}),
					attribute.Int("http.response.status_code", 200),
				)
				s.AddEvent("login", trace.WithAttributes(attribute.String("token", "abc"), attribute.String("who", "bob")))
				s.RecordError(errors.New("db said s3cr3t"))
				s.SetStatus(codes.Error, "failed with s3cr3t")
			})
			for _, sp := range []sdktrace.ReadOnlySpan{exported, stored} {
				a := attrMap(sp.Attributes())
				if a["user.password"] != "[REDACTED]" {
					t.Errorf("user.password = %q", a["user.password"])
				}
				if a["note"] != "the key is [REDACTED:test] here" {
					t.Errorf("note = %q", a["note"])
				}
				if u := a["url.full"]; strings.Contains(u, "bob") || strings.Contains(u, "pw@") || strings.Contains(u, "abc") ||
					!strings.Contains(u, "REDACTED") || !strings.Contains(u, "id=7") || !strings.Contains(u, "api.example.com/v1/items") {
					t.Errorf("url.full = %q", u)
				}
				if q := a["url.query"]; strings.Contains(q, "hunter2") || !strings.Contains(q, "id=7") {
					t.Errorf("url.query = %q", q)
				}
				if h := a["http.request.header.authorization"]; strings.Contains(h, "abc") {
					t.Errorf("authorization header = %q", h)
				}
				if h := a["http.request.header.x-request-id"]; h != `["r-1"]` {
					t.Errorf("x-request-id header = %q", h)
				}
				if a["http.response.status_code"] != "200" {
					t.Errorf("status code = %q", a["http.response.status_code"])
				}
				if sp.Status().Description != "failed with [REDACTED:test]" {
					t.Errorf("status = %q", sp.Status().Description)
				}
				var sawLogin, sawException bool
				for _, ev := range sp.Events() {
					ea := attrMap(ev.Attributes)
					switch ev.Name {
					case "login":
						sawLogin = true
						if ea["token"] != "[REDACTED]" || ea["who"] != "bob" {
							t.Errorf("login event %v", ea)
						}
					case "exception":
						sawException = true
						if strings.Contains(ea["exception.message"], "s3cr3t") {
							t.Errorf("exception event %v", ea)
						}
					}
				}
				if !sawLogin || !sawException {
					t.Errorf("events missing: %v", sp.Events())
				}
			}
		})
	}
}

func TestURLUserInfoRedactedWithoutPolicy(t *testing.T) {
	exported, _ := exportOne(t, nil, func(s trace.Span) {
		s.SetAttributes(attribute.String("url.full", "https://bob:pw@example.com/x?a=1"), attribute.String("other", "v"))
	})
	a := attrMap(exported.Attributes())
	if a["url.full"] != "https://REDACTED:REDACTED@example.com/x?a=1" {
		t.Errorf("url.full = %q", a["url.full"])
	}
	if a["other"] != "v" {
		t.Errorf("other = %q", a["other"])
	}
}

func TestRedactSpanLeavesCleanSpanAlone(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	p, _ := New(context.Background(), Config{Exporter: exporterCustom, SpanExporter: exp})
	_, s := p.Tracer().Start(context.Background(), "clean", trace.WithAttributes(attribute.String("a", "b")))
	s.End()
	raw := p.Store().Spans()[0]
	if got := RedactSpan(keyRedactor{}, raw); got != raw {
		t.Error("RedactSpan copied a span that needed nothing")
	}
	_ = p.Shutdown(context.Background())
}

func TestRedactURL(t *testing.T) {
	cases := map[string]string{
		"http://example.com/a?b=1":                   "http://example.com/a?b=1",
		"http://u:p@example.com/":                    "http://REDACTED:REDACTED@example.com/",
		"http://example.com/?password=x&q=go%20lang": "http://example.com/?password=%5BREDACTED%5D&q=go%20lang",
		"::not a url":                                "::not a url",
	}
	for in, want := range cases {
		if got := redactURL(keyRedactor{}, in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// countingRedactor is keyRedactor that also says which keys are sensitive,
// as *redact.Policy does, and counts the attributes it was asked about.
type countingRedactor struct {
	keyRedactor
	asked map[string]int
	keys  []string // sensitive keys besides keyRedactor's words
}

func (r *countingRedactor) KeyValue(kv attribute.KeyValue) attribute.KeyValue {
	r.asked[string(kv.Key)]++
	if r.IsSensitiveKey(string(kv.Key)) {
		return kv.Key.String("[REDACTED]")
	}
	return r.keyRedactor.KeyValue(kv)
}

func (r *countingRedactor) IsSensitiveKey(k string) bool {
	for _, s := range r.keys {
		if k == s {
			return true
		}
	}
	return sensitive(k)
}

// The gRPC attributes observe writes from a fixed vocabulary skip the value
// scan; anything else under those keys, and every other attribute, is still
// redacted, and a key the policy names sensitive is still masked.
func TestRedactSkipsKnownSafeGRPCValues(t *testing.T) {
	r := &countingRedactor{asked: map[string]int{}}
	in := []attribute.KeyValue{
		attribute.String("rpc.system.name", "grpc"),
		attribute.String("rpc.response.status_code", "DEADLINE_EXCEEDED"),
		attribute.String("error.type", "DEADLINE_EXCEEDED"),
		attribute.String("rpc.method", "pkg.Svc/s3cr3t"),
		attribute.String("client.address", "10.0.0.1"),
	}
	out, changed := redactAttrs(r, in)
	if !changed || out[3].Value.AsString() != "pkg.Svc/[REDACTED:test]" {
		t.Errorf("rpc.method not redacted: %v", out[3])
	}
	for _, k := range []string{"rpc.system.name", "rpc.response.status_code", "error.type"} {
		if r.asked[k] != 0 {
			t.Errorf("%s (a known-safe value) was scanned", k)
		}
	}
	for _, k := range []string{"rpc.method", "client.address"} {
		if r.asked[k] != 1 {
			t.Errorf("%s asked %d times, want 1", k, r.asked[k])
		}
	}

	// Outside the vocabulary, the same keys are redacted as before.
	r = &countingRedactor{asked: map[string]int{}}
	out, _ = redactAttrs(r, []attribute.KeyValue{
		attribute.String("rpc.system.name", "s3cr3t"),
		attribute.String("rpc.response.status_code", "s3cr3t"),
		attribute.String("error.type", "token s3cr3t"),
		attribute.Int("rpc.response.status_code", 4),
	})
	for i, kv := range out[:3] {
		if strings.Contains(kv.Value.AsString(), "s3cr3t") {
			t.Errorf("attribute %d kept its secret: %v", i, kv)
		}
	}
	if r.asked["rpc.response.status_code"] != 2 {
		t.Errorf("status code outside the vocabulary asked %d times, want 2", r.asked["rpc.response.status_code"])
	}

	// A policy naming the key sensitive still masks a known-safe value.
	r = &countingRedactor{asked: map[string]int{}, keys: []string{"error.type"}}
	out, _ = redactAttrs(r, []attribute.KeyValue{attribute.String("error.type", "INTERNAL")})
	if out[0].Value.AsString() != "[REDACTED]" {
		t.Errorf("sensitive key error.type not masked: %v", out[0])
	}

	// A Redactor that cannot tell sensitive keys sees every attribute.
	spy := &spyRedactor{}
	redactAttrs(spy, in)
	if spy.n != len(in) {
		t.Errorf("a Redactor without IsSensitiveKey was asked about %d of %d attributes", spy.n, len(in))
	}
}

type spyRedactor struct {
	keyRedactor
	n int
}

func (s *spyRedactor) KeyValue(kv attribute.KeyValue) attribute.KeyValue {
	s.n++
	return s.keyRedactor.KeyValue(kv)
}
