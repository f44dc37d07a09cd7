package redact

import "go.opentelemetry.io/otel/attribute"

// KeyValue returns kv with its value redacted, for span attributes, span
// event attributes and resource attributes: a sensitive key gets the mask (or
// hash) as a string; string values and the strings inside string slices,
// slices and maps get [Policy.String]; map entries with a sensitive key are
// masked; byte slices are inspected as text. Numbers and bools pass. A clean
// string attribute is returned as is, without allocating.
func (p *Policy) KeyValue(kv attribute.KeyValue) attribute.KeyValue {
	p = p.self()
	if p.keys.match(string(kv.Key)) {
		text, ok := otelText(kv.Value)
		return attribute.String(string(kv.Key), p.keyMask(text, ok))
	}
	if v, changed := p.otelValue(kv.Value, 0); changed {
		return attribute.KeyValue{Key: kv.Key, Value: v}
	}
	return kv
}

// keyValues redacts each attribute as [Policy.KeyValue] does. When nothing
// changes it returns kvs itself; otherwise a new slice.
func (p *Policy) keyValues(kvs []attribute.KeyValue) []attribute.KeyValue {
	p = p.self()
	for i := range kvs {
		r := p.KeyValue(kvs[i])
		if r == kvs[i] {
			continue
		}
		out := make([]attribute.KeyValue, len(kvs))
		copy(out, kvs[:i])
		out[i] = r
		for j := i + 1; j < len(kvs); j++ {
			out[j] = p.KeyValue(kvs[j])
		}
		return out
	}
	return kvs
}

func otelText(v attribute.Value) (string, bool) {
	switch v.Type() {
	case attribute.STRING:
		return v.AsString(), true
	case attribute.BOOL, attribute.INT64, attribute.FLOAT64:
		return v.String(), true
	case attribute.BYTESLICE:
		return string(v.AsByteSlice()), true
	}
	return "", false
}

func (p *Policy) otelValue(v attribute.Value, depth int) (attribute.Value, bool) {
	if depth >= maxDepth {
		return attribute.StringValue(truncated), true
	}
	switch v.Type() {
	case attribute.STRING:
		if s, changed := p.redactString(v.AsString()); changed {
			return attribute.StringValue(s), true
		}
	case attribute.STRINGSLICE:
		ss := v.AsStringSlice()
		changed := false
		for i, s := range ss {
			if r, ch := p.redactString(s); ch {
				ss[i], changed = r, true
			}
		}
		if changed {
			return attribute.StringSliceValue(ss), true
		}
	case attribute.BYTESLICE:
		if s, changed := p.redactString(string(v.AsByteSlice())); changed {
			return attribute.ByteSliceValue([]byte(s)), true
		}
	case attribute.SLICE:
		vs := v.AsSlice()
		changed := false
		for i := range vs {
			if r, ch := p.otelValue(vs[i], depth+1); ch {
				vs[i], changed = r, true
			}
		}
		if changed {
			return attribute.SliceValue(vs...), true
		}
	case attribute.MAP:
		kvs := v.AsMap()
		changed := false
		for i, kv := range kvs {
			if p.keys.match(string(kv.Key)) {
				text, ok := otelText(kv.Value)
				kvs[i], changed = attribute.String(string(kv.Key), p.keyMask(text, ok)), true
				continue
			}
			if r, ch := p.otelValue(kv.Value, depth+1); ch {
				kvs[i].Value, changed = r, true
			}
		}
		if changed {
			return attribute.MapValue(kvs...), true
		}
	}
	return v, false
}
