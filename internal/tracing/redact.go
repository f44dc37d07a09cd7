package tracing

import (
	"net/url"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Redactor is the part of a redaction policy tracing needs; *redact.Policy
// implements it. KeyValue returns the attribute with its value masked when
// the key is sensitive or the value holds a detected secret (it returns kv
// itself when nothing matched); String masks detected secrets in free text.
//
// A Redactor may also implement
//
//	URL(u *url.URL) string                          // url.full: user info and sensitive query values
//	Header(name string, values []string) []string   // captured http.*.header.* attributes
//
// and tracing uses those for the matching attributes; otherwise it redacts
// URL user info itself and asks KeyValue about each query parameter.
type Redactor interface {
	KeyValue(kv attribute.KeyValue) attribute.KeyValue
	String(s string) string
}

type urlRedactor interface {
	URL(u *url.URL) string
}

type headerRedactor interface {
	Header(name string, values []string) []string
}

// Attribute keys whose values are URLs or query strings.
const (
	keyURLFull  = "url.full"
	keyURLQuery = "url.query"
	keyHTTPURL  = "http.url" // older semantic conventions
	keyReqHdr   = "http.request.header."
	keyRespHdr  = "http.response.header."

	// A span ID written by profiling.LinkSpans, never a secret: redacting
	// it would break the span↔profile link, and one that happens to be 16
	// decimal digits passing Luhn reads as a card number.
	keyProfileID = "pyroscope.profile.id"
)

// redactedSpan overrides what redaction changed; everything else is the
// original span's.
type redactedSpan struct {
	sdktrace.ReadOnlySpan
	attrs  []attribute.KeyValue
	events []sdktrace.Event
	links  []sdktrace.Link
	status sdktrace.Status
}

func (s *redactedSpan) Attributes() []attribute.KeyValue { return s.attrs }
func (s *redactedSpan) Events() []sdktrace.Event         { return s.events }
func (s *redactedSpan) Links() []sdktrace.Link           { return s.links }
func (s *redactedSpan) Status() sdktrace.Status          { return s.status }

// RedactSpan returns s with its attributes, event and link attributes and
// status message scrubbed by r (nil: only URL user info is replaced). It
// returns s itself when nothing changed; it never modifies s.
func RedactSpan(r Redactor, s sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	return redactSpan(r, s)
}

func redactSpan(r Redactor, s sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	if rs, ok := s.(*redactedSpan); ok && rs.ReadOnlySpan != nil {
		return s // already scrubbed
	}
	attrs, changed := redactAttrs(r, s.Attributes())
	var events []sdktrace.Event
	var links []sdktrace.Link
	status := s.Status()
	if r != nil {
		evs := s.Events()
		for i := range evs {
			if na, ch := redactAttrs(r, evs[i].Attributes); ch {
				if events == nil {
					events = slices.Clone(evs)
				}
				events[i].Attributes = na
			}
		}
		if events == nil {
			events = evs
		} else {
			changed = true
		}
		ls := s.Links()
		for i := range ls {
			if na, ch := redactAttrs(r, ls[i].Attributes); ch {
				if links == nil {
					links = slices.Clone(ls)
				}
				links[i].Attributes = na
			}
		}
		if links == nil {
			links = ls
		} else {
			changed = true
		}
		if d := status.Description; d != "" {
			if nd := r.String(d); nd != d {
				status.Description = nd
				changed = true
			}
		}
	}
	if !changed {
		return s
	}
	if r == nil {
		events, links = s.Events(), s.Links()
	}
	return &redactedSpan{ReadOnlySpan: s, attrs: attrs, events: events, links: links, status: status}
}

// redactAttrs returns the scrubbed attributes and whether any changed; the
// input slice is never modified (it may be the span's own).
func redactAttrs(r Redactor, in []attribute.KeyValue) ([]attribute.KeyValue, bool) {
	var out []attribute.KeyValue
	for i, kv := range in {
		nkv := redactKV(r, kv)
		if nkv == kv {
			continue
		}
		if out == nil {
			out = slices.Clone(in)
		}
		out[i] = nkv
	}
	if out == nil {
		return in, false
	}
	return out, true
}

func redactKV(r Redactor, kv attribute.KeyValue) attribute.KeyValue {
	if r != nil && knownSafe(kv) {
		if kc, ok := r.(keyChecker); ok && !kc.IsSensitiveKey(string(kv.Key)) {
			return kv
		}
	}
	k := string(kv.Key)
	switch {
	case k == keyProfileID:
		return kv
	case k == keyURLFull || k == keyHTTPURL:
		if kv.Value.Type() == attribute.STRING {
			return attribute.String(k, redactURL(r, kv.Value.AsString()))
		}
	case k == keyURLQuery:
		if kv.Value.Type() == attribute.STRING {
			return attribute.String(k, redactQuery(r, kv.Value.AsString()))
		}
	case strings.HasPrefix(k, keyReqHdr) || strings.HasPrefix(k, keyRespHdr):
		if hr, ok := r.(headerRedactor); ok && kv.Value.Type() == attribute.STRINGSLICE {
			name := k[strings.LastIndexByte(k, '.')+1:]
			vals := kv.Value.AsStringSlice()
			nv := hr.Header(name, vals)
			if !slices.Equal(nv, vals) {
				return attribute.StringSlice(k, nv)
			}
			return kv
		}
	}
	if r == nil {
		return kv
	}
	return r.KeyValue(kv)
}

// keyChecker is the optional part of a Redactor that says whether a key
// alone names a secret; *redact.Policy implements it.
type keyChecker interface {
	IsSensitiveKey(key string) bool
}

// knownSafe reports whether kv is one of the attributes observe's gRPC
// instrumentation writes from a fixed vocabulary: rpc.system.name "grpc", or
// a canonical gRPC status code name as rpc.response.status_code or
// error.type. Such a value holds no secret, so no detector scans it; it is
// still masked when the policy names its key sensitive, and a Redactor that
// cannot say so (no IsSensitiveKey) still gets it. Everything else, what a
// request or the program supplied (rpc.method, rpc.method_original,
// addresses, user attributes), is redacted as before.
func knownSafe(kv attribute.KeyValue) bool {
	switch kv.Key {
	case "rpc.system.name":
		return kv.Value.Type() == attribute.STRING && kv.Value.AsString() == "grpc"
	case "rpc.response.status_code", "error.type":
		return kv.Value.Type() == attribute.STRING && isGRPCCodeName(kv.Value.AsString())
	}
	return false
}

// isGRPCCodeName reports whether s is a canonical gRPC status code name
// (grpcCodeNames, store.go).
func isGRPCCodeName(s string) bool {
	for _, n := range grpcCodeNames {
		if s == n {
			return true
		}
	}
	return false
}

// redactURL returns raw with user info replaced by REDACTED (as the semantic
// conventions ask for url.full) and, with a Redactor, the values of sensitive
// query parameters masked. A string that does not parse as a URL goes
// through r.String.
func redactURL(r Redactor, raw string) string {
	if r == nil && !strings.Contains(raw, "@") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		if r != nil {
			return r.String(raw)
		}
		return raw
	}
	if ur, ok := r.(urlRedactor); ok {
		out := ur.URL(u)
		if u.User != nil {
			// Whatever the policy did with credentials, the semantic
			// conventions want them replaced.
			if u2, err := url.Parse(out); err == nil && u2.User != nil {
				u2.User = url.UserPassword("REDACTED", "REDACTED")
				out = u2.String()
			}
		}
		return out
	}
	changed := false
	if u.User != nil {
		u.User = url.UserPassword("REDACTED", "REDACTED")
		changed = true
	}
	if r != nil && u.RawQuery != "" {
		if q := redactQuery(r, u.RawQuery); q != u.RawQuery {
			u.RawQuery = q
			changed = true
		}
	}
	if !changed {
		return raw
	}
	return u.String()
}

// redactQuery masks the values of sensitive parameters in a raw query
// string, keeping order and encoding of everything else.
func redactQuery(r Redactor, q string) string {
	if r == nil || q == "" {
		return q
	}
	if ur, ok := r.(urlRedactor); ok {
		return strings.TrimPrefix(ur.URL(&url.URL{RawQuery: q}), "?")
	}
	parts := strings.Split(q, "&")
	changed := false
	for i, part := range parts {
		if np := redactQueryPair(r, part); np != part {
			parts[i] = np
			changed = true
		}
	}
	if !changed {
		return q
	}
	return strings.Join(parts, "&")
}

func redactQueryPair(r Redactor, pair string) string {
	k, v, ok := strings.Cut(pair, "=")
	if !ok {
		return pair
	}
	dk, err1 := url.QueryUnescape(k)
	dv, err2 := url.QueryUnescape(v)
	if err1 != nil || err2 != nil {
		return r.String(pair)
	}
	nv := r.KeyValue(attribute.String(dk, dv)).Value.AsString()
	if nv == dv {
		return pair
	}
	return k + "=" + url.QueryEscape(nv)
}
