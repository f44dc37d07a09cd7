package tracing

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceContext is the W3C Trace Context propagator behind
// OTEL_PROPAGATORS=tracecontext. It is OpenTelemetry's
// propagation.TraceContext (whose injection it uses, and whose traceparent
// parsing it mirrors, differentially fuzzed against it) with the header
// handling the W3C conformance suite asks for and the OTel one lacks:
//   - a request with more than one traceparent header has no valid parent
//     (a new trace starts), as the spec says for an ambiguous one;
//   - several tracestate headers are one list, combined in order; empty
//     headers and empty list members are ignored;
//   - a duplicated key keeps its first member instead of discarding the
//     whole tracestate;
//   - keys follow the key grammar of the spec's test harness (an "@"
//     anywhere after the first character, 256 characters at most), and the
//     members OTel's TraceState cannot hold are still propagated.
//
// A tracestate that breaks the grammar (a bad key or value, more than 32
// members) is discarded whole; the traceparent is kept.
type traceContext struct{ propagation.TraceContext }

var _ propagation.TextMapPropagator = traceContext{}

const (
	traceparentHeader = "traceparent"
	tracestateHeader  = "tracestate"
	// maxTracestateMembers is the spec's limit on list members.
	maxTracestateMembers = 32
	// maxTracestateBytes bounds the input parsed: 32 members of a
	// 256-byte key and a 256-byte value, with their delimiters and room
	// for optional white space. Longer is discarded without parsing.
	maxTracestateBytes = 32 * 1024
)

// tracestateKey is where Extract keeps a tracestate OTel's TraceState
// cannot hold in full, for Inject.
type tracestateKey struct{}

// w3cState is a received tracestate with members OTel's TraceState
// rejects: list is the whole list as received (normalized), otel what the
// span context carries.
type w3cState struct {
	traceID trace.TraceID
	list    []tracestateMember
	otel    string
}

type tracestateMember struct{ key, value string }

// Extract reads traceparent and tracestate from carrier.
func (tc traceContext) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	parents := headerValues(carrier, traceparentHeader)
	if len(parents) != 1 {
		return ctx // none, or ambiguous
	}
	sc, ok := parseTraceparent(parents[0])
	if !ok {
		return ctx
	}
	states := headerValues(carrier, tracestateHeader)
	if len(states) == 1 {
		// One header OTel's parser accepts (the usual case) is the list
		// this grammar gives too, and all of it fits OTel's TraceState.
		if ts, err := trace.ParseTraceState(states[0]); err == nil {
			return trace.ContextWithRemoteSpanContext(ctx, sc.WithTraceState(ts))
		}
	}
	list, ok := parseTracestate(states)
	if !ok || len(list) == 0 {
		return trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	ts, all := otelTraceState(list)
	sc = sc.WithTraceState(ts)
	ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	if !all {
		ctx = context.WithValue(ctx, tracestateKey{}, &w3cState{traceID: sc.TraceID(), list: list, otel: ts.String()})
	}
	return ctx
}

// Inject writes traceparent and tracestate into carrier.
func (tc traceContext) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	st, _ := ctx.Value(tracestateKey{}).(*w3cState)
	sc := trace.SpanContextFromContext(ctx)
	if st == nil || !sc.IsValid() || sc.TraceID() != st.traceID {
		tc.TraceContext.Inject(ctx, carrier)
		return
	}
	// Some carriers (gRPC metadata) add rather than replace: the OTel
	// propagator's tracestate is left out, this one's set once.
	tc.TraceContext.Inject(ctx, withoutTracestate{carrier})
	if cur := sc.TraceState().String(); cur != st.otel {
		// Changed since received (a sampler's entry, say): the current
		// list first, then the received members OTel could not hold.
		carrier.Set(tracestateHeader, mergeTracestate(sc.TraceState(), st.list))
		return
	}
	carrier.Set(tracestateHeader, formatTracestate(st.list))
}

// withoutTracestate is a carrier that drops what is set for tracestate.
type withoutTracestate struct{ propagation.TextMapCarrier }

func (c withoutTracestate) Set(key, value string) {
	if key != tracestateHeader {
		c.TextMapCarrier.Set(key, value)
	}
}

// headerValues returns every value of key: all of them when the carrier
// can say (propagation.ValuesGetter: HTTP headers, gRPC metadata), else
// the one Get returns.
func headerValues(carrier propagation.TextMapCarrier, key string) []string {
	if vg, ok := carrier.(propagation.ValuesGetter); ok {
		return vg.Values(key)
	}
	if v := carrier.Get(key); v != "" {
		return []string{v}
	}
	return nil
}

// parseTraceparent parses a traceparent as OTel's propagator does:
//
//	traceparent = version "-" trace-id "-" parent-id "-" trace-flags [ "-" … ]
//
// two lower-case hex digits of version (not ff; version 00 has nothing
// after the flags and only the sampled and random flags), 32 of trace-id
// and 16 of parent-id, neither all zero. Only the sampled and random flags
// are kept. The result is a remote span context.
func parseTraceparent(h string) (trace.SpanContext, bool) {
	var cfg trace.SpanContextConfig
	if len(h) < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-' {
		return trace.SpanContext{}, false
	}
	var ver, flags [1]byte
	if !decodeHex(ver[:], h[0:2]) || ver[0] == 0xff ||
		!decodeHex(cfg.TraceID[:], h[3:35]) || !decodeHex(cfg.SpanID[:], h[36:52]) || !decodeHex(flags[:], h[53:55]) {
		return trace.SpanContext{}, false
	}
	if rest := h[55:]; ver[0] == 0 && (rest != "" || flags[0] > 3) || ver[0] != 0 && rest != "" && rest[0] != '-' {
		return trace.SpanContext{}, false
	}
	cfg.TraceFlags = trace.TraceFlags(flags[0]) & (trace.FlagsSampled | trace.FlagsRandom)
	cfg.Remote = true
	sc := trace.NewSpanContext(cfg)
	return sc, sc.IsValid()
}

// decodeHex decodes lower-case hex digits into dst (len(src) == 2*len(dst)).
func decodeHex(dst []byte, src string) bool {
	for i := range dst {
		hi, ok1 := hexDigit(src[2*i])
		lo, ok2 := hexDigit(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// parseTracestate parses the tracestate headers as one list (RFC 9110
// combines repeated fields with commas):
//
//	list        = list-member 0*31( OWS "," OWS list-member )
//	list-member = key "=" value
//	key         = ( lcalpha / DIGIT ) 0*255( lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@" )
//	value       = 0*255( chr ) nblk-chr
//	nblk-chr    = %x21-2B / %x2D-3C / %x3E-7E
//	chr         = %x20 / nblk-chr
//
// Empty members are skipped, a duplicated key keeps its first member. ok is
// false when the list breaks the grammar or has more than 32 members: the
// whole tracestate is then discarded.
func parseTracestate(headers []string) (list []tracestateMember, ok bool) {
	n := 0
	for _, h := range headers {
		n += len(h)
	}
	if n > maxTracestateBytes {
		return nil, false
	}
	for _, h := range headers {
		for h != "" {
			var m string
			m, h, _ = strings.Cut(h, ",")
			m = strings.Trim(m, " \t")
			if m == "" {
				continue
			}
			key, value, found := strings.Cut(m, "=")
			if !found || !validTracestateKey(key) || !validTracestateValue(value) {
				return nil, false
			}
			if hasKey(list, key) {
				continue
			}
			if len(list) == maxTracestateMembers {
				return nil, false
			}
			list = append(list, tracestateMember{key, value})
		}
	}
	return list, true
}

func hasKey(list []tracestateMember, key string) bool {
	for _, m := range list {
		if m.key == key {
			return true
		}
	}
	return false
}

func validTracestateKey(k string) bool {
	if k == "" || len(k) > 256 || !isLowerAlnum(k[0]) {
		return false
	}
	for i := 1; i < len(k); i++ {
		c := k[i]
		if !isLowerAlnum(c) && c != '_' && c != '-' && c != '*' && c != '/' && c != '@' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func validTracestateValue(v string) bool {
	if v == "" || len(v) > 256 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return v[len(v)-1] != ' '
}

// otelTraceState is the part of list OTel's TraceState accepts, in order;
// all reports whether that is the whole list.
func otelTraceState(list []tracestateMember) (ts trace.TraceState, all bool) {
	all = true
	for i := len(list) - 1; i >= 0; i-- { // Insert puts a member first
		next, err := ts.Insert(list[i].key, list[i].value)
		if err != nil {
			all = false
			continue
		}
		ts = next
	}
	return ts, all
}

func formatTracestate(list []tracestateMember) string {
	var b strings.Builder
	for i, m := range list {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(m.key)
		b.WriteByte('=')
		b.WriteString(m.value)
	}
	return b.String()
}

// mergeTracestate is cur, then the members of received whose keys cur
// lacks and cur could not hold, up to 32 members.
func mergeTracestate(cur trace.TraceState, received []tracestateMember) string {
	var list []tracestateMember
	cur.Walk(func(k, v string) bool {
		list = append(list, tracestateMember{k, v})
		return true
	})
	for _, m := range received {
		if len(list) == maxTracestateMembers {
			break
		}
		if cur.Get(m.key) == "" && !hasKey(list, m.key) {
			if _, err := (trace.TraceState{}).Insert(m.key, m.value); err != nil {
				list = append(list, m)
			}
		}
	}
	return formatTracestate(list)
}
