package tracing

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The W3C grammar, written independently of the parser as regular
// expressions (the key as the spec's test harness has it). The counted
// repetitions (0*255) are length checks beside them: a regexp with {0,255}
// is too slow to fuzz with.
var (
	w3cMember      = regexp.MustCompile(`^([0-9a-z][_0-9a-z\-*/@]*)=([\x20-\x2b\x2d-\x3c\x3e-\x7e]*[\x21-\x2b\x2d-\x3c\x3e-\x7e])$`)
	w3cTraceparent = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-0[0-3]$`)
)

// grammarTracestate is the reference: the members of the combined headers,
// first of each key, and whether the list is valid.
func grammarTracestate(headers []string) ([]tracestateMember, bool) {
	var list []tracestateMember
	for _, m := range strings.Split(strings.Join(headers, ","), ",") {
		m = strings.Trim(m, " \t")
		if m == "" {
			continue
		}
		g := w3cMember.FindStringSubmatch(m)
		if g == nil || len(g[1]) > 256 || len(g[2]) > 256 {
			return nil, false
		}
		if !hasKey(list, g[1]) {
			list = append(list, tracestateMember{g[1], g[2]})
		}
	}
	if len(list) > maxTracestateMembers {
		return nil, false
	}
	return list, true
}

func FuzzTracestate(f *testing.F) {
	for _, s := range [][2]string{
		{"foo=1,bar=2", "rojo=1,congo=2"},
		{"", "foo=1"},
		{"foo=1 \t , \t bar=2", ""},
		{"foo@=1,@bar=2", "foo@@bar=1"},
		{"foo=bar=baz", "foo=,bar=3"},
		{"FOO=1", "foo.bar=1"},
		{"foo=1,foo=2", "foo=3"},
		{strings.Repeat("z", 256) + "=1", strings.Repeat("z", 257) + "=1"},
		{"a=" + strings.Repeat("v", 256), "b=" + strings.Repeat("v", 257)},
		{"a= x", "b=x "},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, h1, h2 string) {
		if len(h1)+len(h2) > maxTracestateBytes {
			t.Skip("past the input cap, which has its own test")
		}
		headers := []string{h1, h2}
		got, ok := parseTracestate(headers)
		want, wantOK := grammarTracestate(headers)
		if ok != wantOK {
			t.Fatalf("parseTracestate(%q) ok=%v, the grammar says %v", headers, ok, wantOK)
		}
		if !ok {
			return
		}
		if formatTracestate(got) != formatTracestate(want) {
			t.Fatalf("parseTracestate(%q) = %q, the grammar says %q", headers, formatTracestate(got), formatTracestate(want))
		}
		// What is sent on parses back to itself.
		again, ok := parseTracestate([]string{formatTracestate(got)})
		if !ok || formatTracestate(again) != formatTracestate(got) {
			t.Fatalf("%q does not parse back (%v, %q)", formatTracestate(got), ok, formatTracestate(again))
		}
	})
}

// Through the propagator, with any traceparent headers: a parent only from
// exactly one traceparent the grammar accepts, and the tracestate sent on
// is the grammar's list whenever there is a parent.
func FuzzTraceContextExtract(f *testing.F) {
	const tp = "00-12345678901234567890123456789012-1234567890123456-01"
	f.Add(tp, "", "foo=1", "bar@=2")
	f.Add(tp, tp, "foo=1", "")
	f.Add("00-00000000000000000000000000000000-1234567890123456-01", "", "foo=1", "")
	f.Add("cc-12345678901234567890123456789012-1234567890123456-01-what", "", "", "")
	f.Add("cc-12345678901234567890123456789012-1234567890123456-01what", "", "", "")
	f.Add("ff-12345678901234567890123456789012-1234567890123456-01", "", "", "")
	f.Add("00-12345678901234567890123456789012-1234567890123456-09", "", "", "")
	f.Add("00-ABCDEF78901234567890123456789012-1234567890123456-01", "", "", "")
	f.Fuzz(func(t *testing.T, p1, p2, s1, s2 string) {
		in := http.Header{}
		for _, v := range []string{p1, p2} {
			if v != "" {
				in.Add("Traceparent", v)
			}
		}
		in["Tracestate"] = []string{s1, s2}
		tc := traceContext{}
		ctx := tc.Extract(context.Background(), propagation.HeaderCarrier(in))
		sc := trace.SpanContextFromContext(ctx)
		if len(in.Values("Traceparent")) != 1 && sc.IsValid() {
			t.Fatalf("parent from %d traceparent headers", len(in.Values("Traceparent")))
		}
		if p1 != "" && p2 == "" {
			// One traceparent: the same parent as OTel's propagator.
			otelSC := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
				propagation.MapCarrier{"traceparent": p1}))
			if otelSC.IsValid() != sc.IsValid() || otelSC.TraceID() != sc.TraceID() ||
				otelSC.SpanID() != sc.SpanID() || otelSC.TraceFlags() != sc.TraceFlags() || otelSC.IsRemote() != sc.IsRemote() {
				t.Fatalf("traceparent %q: %v, OTel's propagator %v", p1, sc, otelSC)
			}
		}
		if g := w3cTraceparent.FindStringSubmatch(p1); g != nil && p2 == "" {
			valid := g[1] != strings.Repeat("0", 32) && g[2] != strings.Repeat("0", 16)
			if sc.IsValid() != valid || valid && sc.TraceID().String() != g[1] {
				t.Fatalf("traceparent %q: valid=%v %s", p1, sc.IsValid(), sc.TraceID())
			}
		}
		out := http.Header{}
		tc.Inject(ctx, propagation.HeaderCarrier(out))
		if !sc.IsValid() {
			if len(out) != 0 {
				t.Fatalf("injected %v without a parent", out)
			}
			return
		}
		want, ok := grammarTracestate([]string{s1, s2})
		if !ok || len(s1)+len(s2) > maxTracestateBytes {
			want = nil
		}
		if got := out.Get("Tracestate"); got != formatTracestate(want) {
			t.Fatalf("tracestate %q sent on as %q, the grammar says %q", []string{s1, s2}, got, formatTracestate(want))
		}
	})
}
