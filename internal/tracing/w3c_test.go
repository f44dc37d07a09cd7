package tracing

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
)

const (
	w3cParent  = "00-12345678901234567890123456789012-1234567890123456-01"
	w3cTraceID = "12345678901234567890123456789012"
)

// relay extracts from in and injects what a child of the received context
// sends on: the tracestate header it carries ("" when none).
func relay(t *testing.T, p propagation.TextMapPropagator, in http.Header) (trace.SpanContext, string) {
	t.Helper()
	ctx := p.Extract(context.Background(), propagation.HeaderCarrier(in))
	sc := trace.SpanContextFromContext(ctx)
	out := http.Header{}
	p.Inject(ctx, propagation.HeaderCarrier(out))
	if vs := out.Values("Tracestate"); len(vs) > 1 {
		t.Errorf("%d tracestate headers injected", len(vs))
	}
	return sc, out.Get("Tracestate")
}

func TestTraceContextW3CCases(t *testing.T) {
	p, err := NewPropagator([]string{"tracecontext", "baggage"})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("z", 256)
	cases := []struct {
		name        string
		traceparent []string
		tracestate  []string
		wantValid   bool
		want        string // tracestate sent on
	}{
		{"one of each", []string{w3cParent}, []string{"foo=1,bar=2"}, true, "foo=1,bar=2"},
		{"duplicated traceparent", []string{w3cParent, "00-12345678901234567890123456789011-1234567890123456-01"}, []string{"foo=1"}, false, ""},
		{"the same traceparent twice", []string{w3cParent, w3cParent}, nil, false, ""},
		{"several tracestate headers", []string{w3cParent}, []string{"foo=1,bar=2", "rojo=1,congo=2", "baz=3"}, true, "foo=1,bar=2,rojo=1,congo=2,baz=3"},
		{"empty tracestate", []string{w3cParent}, []string{""}, true, ""},
		{"empty then member", []string{w3cParent}, []string{"", "foo=1"}, true, "foo=1"},
		{"member then empty", []string{w3cParent}, []string{"foo=1", ""}, true, "foo=1"},
		{"empty members and OWS", []string{w3cParent}, []string{" ,foo=1 \t, \t,bar=2\t"}, true, "foo=1,bar=2"},
		{"duplicated key, same value", []string{w3cParent}, []string{"foo=1,foo=1"}, true, "foo=1"},
		{"duplicated key across headers", []string{w3cParent}, []string{"foo=1", "foo=2"}, true, "foo=1"},
		{"at signs OTel cannot hold", []string{w3cParent}, []string{"foo@=1,bar=2"}, true, "foo@=1,bar=2"},
		{"double at", []string{w3cParent}, []string{"foo@@bar=1,bar=2"}, true, "foo@@bar=1,bar=2"},
		{"key starting with at", []string{w3cParent}, []string{"@foo=1,bar=2"}, true, ""},
		{"256-character key", []string{w3cParent}, []string{"foo=1", long + "=1"}, true, "foo=1," + long + "=1"},
		{"257-character key", []string{w3cParent}, []string{"foo=1", long + "z=1"}, true, ""},
		{"long tenant", []string{w3cParent}, []string{"foo=1", strings.Repeat("t", 242) + "@v=1"}, true, "foo=1," + strings.Repeat("t", 242) + "@v=1"},
		{"long system", []string{w3cParent}, []string{"foo=1", "t@" + strings.Repeat("v", 15) + "=1"}, true, "foo=1,t@" + strings.Repeat("v", 15) + "=1"},
		{"32 members", []string{w3cParent}, []string{members(1, 10), members(11, 32)}, true, members(1, 32)},
		{"33 members", []string{w3cParent}, []string{members(1, 10), members(11, 33)}, true, ""},
		{"upper-case key", []string{w3cParent}, []string{"FOO=1"}, true, ""},
		{"value with equals", []string{w3cParent}, []string{"foo=bar=baz"}, true, ""},
		{"empty value", []string{w3cParent}, []string{"foo=,bar=3"}, true, ""},
		{"past the input cap", []string{w3cParent}, []string{"foo=1", strings.Repeat(",", 40000)}, true, ""},
		{"tracestate without traceparent", nil, []string{"foo=1"}, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := http.Header{}
			for _, v := range c.traceparent {
				in.Add("Traceparent", v)
			}
			for _, v := range c.tracestate {
				in.Add("Tracestate", v)
			}
			sc, got := relay(t, p, in)
			if sc.IsValid() != c.wantValid {
				t.Fatalf("valid parent = %v, want %v", sc.IsValid(), c.wantValid)
			}
			if c.wantValid && sc.TraceID().String() != w3cTraceID {
				t.Errorf("trace id %s", sc.TraceID())
			}
			if got != c.want {
				t.Errorf("tracestate sent on:\n got %q\nwant %q", got, c.want)
			}
		})
	}
}

func members(from, to int) string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, "bar"+string(rune('0'+i/10))+string(rune('0'+i%10))+"=1")
	}
	return strings.Join(s, ",")
}

// The propagator keeps OTel's API: it is what otel.GetTextMapPropagator
// returns once set, with the W3C fields, and works on any carrier (one
// without ValuesGetter gets the first header only; gRPC metadata has them
// all).
func TestTraceContextOTelAPI(t *testing.T) {
	p, err := NewPropagator([]string{"tracecontext"})
	if err != nil {
		t.Fatal(err)
	}
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(p)
	defer otel.SetTextMapPropagator(prev)
	g := otel.GetTextMapPropagator()
	if f := g.Fields(); !slices.Contains(f, "traceparent") || !slices.Contains(f, "tracestate") {
		t.Errorf("Fields() = %v", f)
	}
	ctx := g.Extract(context.Background(), propagation.MapCarrier{"traceparent": w3cParent, "tracestate": "foo@=1,bar=2"})
	mc := propagation.MapCarrier{}
	g.Inject(ctx, mc)
	if mc["traceparent"] != w3cParent || mc["tracestate"] != "foo@=1,bar=2" {
		t.Errorf("MapCarrier round trip: %v", mc)
	}

	// gRPC metadata: several values per key, as over HTTP.
	md := metadata.MD{"traceparent": {w3cParent}, "tracestate": {"foo=1", "rojo=2"}}
	ctx = g.Extract(context.Background(), mdCarrier(md))
	if got := trace.SpanContextFromContext(ctx).TraceState().String(); got != "foo=1,rojo=2" {
		t.Errorf("metadata tracestate %q", got)
	}
	// A carrier that adds rather than replaces gets one tracestate.
	ctx = g.Extract(context.Background(), propagation.MapCarrier{"traceparent": w3cParent, "tracestate": "foo@=1"})
	out := metadata.MD{}
	g.Inject(ctx, mdCarrier(out))
	if v := out.Get("tracestate"); len(v) != 1 || v[0] != "foo@=1" {
		t.Errorf("injected tracestate %q", v)
	}
}

// mdCarrier adapts gRPC metadata the way observe's gRPC middleware does:
// Values gives every value, Set adds.
type mdCarrier metadata.MD

func (c mdCarrier) Get(k string) string {
	if v := metadata.MD(c).Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (c mdCarrier) Values(k string) []string { return metadata.MD(c).Get(k) }
func (c mdCarrier) Set(k, v string)          { metadata.MD(c).Append(k, v) }
func (c mdCarrier) Keys() []string {
	var keys []string
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// A tracestate the SDK changed after it was received (a sampler's member)
// is sent on with the change first and the members OTel could not hold
// after it.
func TestTraceContextChangedTracestate(t *testing.T) {
	p, _ := NewPropagator([]string{"tracecontext"})
	in := http.Header{"Traceparent": {w3cParent}, "Tracestate": {"foo@=1,bar=2"}}
	ctx := p.Extract(context.Background(), propagation.HeaderCarrier(in))
	sc := trace.SpanContextFromContext(ctx)
	ts, err := sc.TraceState().Insert("ot", "th:8")
	if err != nil {
		t.Fatal(err)
	}
	ctx = trace.ContextWithSpanContext(ctx, sc.WithTraceState(ts))
	out := http.Header{}
	p.Inject(ctx, propagation.HeaderCarrier(out))
	if got := out.Get("Tracestate"); got != "ot=th:8,bar=2,foo@=1" {
		t.Errorf("tracestate %q", got)
	}
	// Another trace started from this context does not carry them.
	other := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}})
	out = http.Header{}
	p.Inject(trace.ContextWithSpanContext(ctx, other), propagation.HeaderCarrier(out))
	if got := out.Get("Tracestate"); got != "" {
		t.Errorf("new trace sent tracestate %q", got)
	}
}
