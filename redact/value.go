package redact

import (
	"encoding/json"
	"log/slog"
	"net/url"
	"reflect"
	"strconv"
	"unsafe"
)

// Limits of the walk through values. Beyond them a value is replaced by
// truncated rather than passed on unchecked.
const (
	maxDepth          = 32     // nesting of groups, structs, maps, slices, pointers
	maxNodes          = 10_000 // elements inspected in one value
	maxLogValuerDepth = 16     // LogValue calls returning LogValuers
)

// truncated replaces parts of a value nested deeper, or holding more elements,
// than the policy inspects, and LogValuers that keep returning LogValuers.
const truncated = "[TRUNCATED]"

// Attr returns a with its value redacted: the mask (or hash) as a string value
// when the key is sensitive, whatever the value; otherwise [Policy.Value]. An
// attribute with nothing to redact is returned as is, without allocating.
func (p *Policy) Attr(a slog.Attr) slog.Attr {
	out, _ := p.self().attr(a, 0)
	return out
}

// Attrs redacts each attribute as [Policy.Attr] does. When nothing changes it
// returns as itself, without allocating; otherwise a new slice, so the
// caller's backing array is never written.
func (p *Policy) Attrs(as []slog.Attr) []slog.Attr {
	out, _ := p.self().attrs(as, 0)
	return out
}

// Value returns v with every secret inside it redacted:
//   - strings: detected values replaced ([Policy.String]);
//   - groups: each attribute as [Policy.Attr];
//   - LogValuers: resolved (at most 16 calls deep; a panic becomes the string
//     "[LogValuer panic: …]"), then redacted;
//   - errors: their Error() text; []byte and json.RawMessage: their text;
//     *url.URL and url.URL: as [Policy.URL];
//   - structs, maps, slices, arrays, pointers and interfaces: walked by
//     reflection (the walk of each type is computed once and cached). Fields
//     tagged `redact:"true"`, fields whose name or json name is sensitive and
//     map entries with a sensitive key become "[REDACTED]"; `redact:"false"`
//     exempts a field from the name rule. Unexported fields and fields tagged
//     `json:"-"` are inspected too (a text handler prints them), and left out
//     of a rebuilt value. Values of types implementing slog.LogValuer are
//     resolved and errors become their redacted text. String methods are never
//     called.
//
// A value with nothing to redact is returned as is (for a clean struct, map or
// slice: the same value, so handlers marshal it as they would have). One that
// needs redaction is rebuilt: structs and maps as groups (fields under their
// json names, omitempty honoured), slices and arrays as []any, and values
// with no text in them (numbers, times, IPs) as they were. Values nested more
// than 32 deep or beyond 10,000 elements become truncated.
func (p *Policy) Value(v slog.Value) slog.Value {
	out, _ := p.self().value(v, 0)
	return out
}

func (p *Policy) attr(a slog.Attr, depth int) (slog.Attr, bool) {
	if a.Key != "" && p.keys.match(a.Key) {
		text, ok := valueText(a.Value)
		return slog.String(a.Key, p.keyMask(text, ok)), true
	}
	v, changed := p.value(a.Value, depth)
	if !changed {
		return a, false
	}
	return slog.Attr{Key: a.Key, Value: v}, true
}

func (p *Policy) attrs(as []slog.Attr, depth int) ([]slog.Attr, bool) {
	for i := range as {
		if p.attrClean(&as[i]) {
			continue
		}
		r, changed := p.attr(as[i], depth)
		if !changed {
			continue
		}
		out := make([]slog.Attr, len(as))
		copy(out, as[:i])
		out[i] = r
		for j := i + 1; j < len(as); j++ {
			out[j], _ = p.attr(as[j], depth)
		}
		return out, true
	}
	return as, false
}

func (p *Policy) value(v slog.Value, depth int) (slog.Value, bool) {
	switch v.Kind() {
	case slog.KindString:
		s, changed := p.redactString(v.String())
		if changed {
			return slog.StringValue(s), true
		}
	case slog.KindGroup:
		if depth >= maxDepth {
			return slog.StringValue(truncated), true
		}
		as, changed := p.attrs(v.Group(), depth+1)
		if changed {
			return slog.GroupValue(as...), true
		}
	case slog.KindLogValuer:
		r, _ := p.value(p.resolve(v), depth+1)
		return r, true
	case slog.KindAny:
		return p.anyValue(v, depth)
	}
	return v, false
}

// attrClean is the quick test attrs runs first: true when a surely needs no
// redaction. It handles the kinds of a typical record inline and leaves the
// rest (false) to attr.
func (p *Policy) attrClean(a *slog.Attr) bool {
	if a.Key != "" && p.keys.match(a.Key) {
		return false
	}
	switch a.Value.Kind() {
	case slog.KindString:
		s := a.Value.String()
		cls, digits := p.classify(s)
		return len(p.user) == 0 && !mayFind(cls, digits) || !p.foundAny(s, cls, digits)
	case slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool, slog.KindDuration, slog.KindTime:
		return true
	}
	return false
}

// attrDirty reports whether attr would change a, without counting.
func (p *Policy) attrDirty(a slog.Attr) bool {
	if a.Key != "" && p.keys.match(a.Key) {
		return true
	}
	return p.valueDirty(a.Value, 0)
}

// valueDirty reports whether value would change v, without counting.
func (p *Policy) valueDirty(v slog.Value, depth int) bool {
	switch v.Kind() {
	case slog.KindString:
		return p.dirtyString(v.String())
	case slog.KindGroup:
		if depth >= maxDepth {
			return true
		}
		for _, a := range v.Group() {
			if a.Key != "" && p.keys.match(a.Key) || p.valueDirty(a.Value, depth+1) {
				return true
			}
		}
	case slog.KindLogValuer:
		return true
	case slog.KindAny:
		switch x := v.Any().(type) {
		case nil:
			return false
		case json.RawMessage:
			return p.dirtyString(bytesString(x))
		case []byte:
			return p.dirtyString(bytesString(x))
		case *url.URL:
			return x != nil && p.urlDirty(x)
		case url.URL:
			return p.urlDirty(&x)
		case error:
			_, marshals := x.(json.Marshaler)
			return marshals || p.dirtyString(errorText(x))
		}
		rv := reflect.ValueOf(v.Any())
		w := walkState{depth: depth, budget: maxNodes}
		return p.dirty(rv, p.typeInfo(rv.Type()), &w)
	}
	return false
}

// resolve calls LogValue until the value is not a LogValuer, at most
// maxLogValuerDepth times, turning panics into strings.
func (p *Policy) resolve(v slog.Value) slog.Value {
	for i := 0; i < maxLogValuerDepth && v.Kind() == slog.KindLogValuer; i++ {
		v = callLogValue(v.LogValuer())
	}
	if v.Kind() == slog.KindLogValuer {
		return slog.StringValue(truncated)
	}
	return v
}

func callLogValue(lv slog.LogValuer) (out slog.Value) {
	defer func() {
		if r := recover(); r != nil {
			out = slog.StringValue("[LogValuer panic: " + panicString(r) + "]")
		}
	}()
	return lv.LogValue()
}

// errorText calls Error, turning a panic (a nil receiver, say) into text.
func errorText(err error) (s string) {
	defer func() {
		if r := recover(); r != nil {
			s = "[Error panic: " + panicString(r) + "]"
		}
	}()
	return err.Error()
}

// bytesString views b as a string for scanning; the scanners never retain it
// and a changed result is always a new string.
func bytesString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func (p *Policy) anyValue(v slog.Value, depth int) (slog.Value, bool) {
	switch x := v.Any().(type) {
	case nil:
		return v, false
	case json.RawMessage:
		s, changed := p.redactString(bytesString(x))
		if !changed {
			return v, false
		}
		if json.Valid([]byte(s)) {
			return slog.AnyValue(json.RawMessage(s)), true
		}
		return slog.StringValue(s), true
	case []byte:
		s, changed := p.redactString(bytesString(x))
		if !changed {
			return v, false
		}
		return slog.StringValue(s), true
	case *url.URL:
		if x == nil || !p.urlDirty(x) {
			return v, false
		}
		return slog.StringValue(p.URL(x)), true
	case url.URL:
		if !p.urlDirty(&x) {
			return v, false
		}
		return slog.StringValue(p.URL(&x)), true
	case error:
		s, changed := p.redactString(errorText(x))
		if _, marshals := x.(json.Marshaler); !changed && !marshals {
			return v, false
		}
		return slog.StringValue(s), true
	}
	rv := reflect.ValueOf(v.Any())
	ti := p.typeInfo(rv.Type())
	w := walkState{depth: depth, budget: maxNodes}
	if !p.dirty(rv, ti, &w) {
		return v, false
	}
	w = walkState{depth: depth, budget: maxNodes}
	return p.rebuild(rv, ti, &w), true
}

// valueText is the text a keyed hash is computed on; composite values have
// none and are masked.
func valueText(v slog.Value) (string, bool) {
	switch v.Kind() {
	case slog.KindString:
		return v.String(), true
	case slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool, slog.KindDuration, slog.KindTime:
		return v.String(), true
	case slog.KindAny:
		switch x := v.Any().(type) {
		case []byte:
			return string(x), true
		case json.RawMessage:
			return string(x), true
		}
		return reflectText(reflect.ValueOf(v.Any()))
	}
	return "", false
}

// reflectText is the text of a scalar reflected value.
func reflectText(v reflect.Value) (string, bool) {
	switch v.Kind() {
	case reflect.String:
		return v.String(), true
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(v.Uint(), 10), true
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64), true
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return string(v.Bytes()), true
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return reflectText(v.Elem())
		}
	}
	return "", false
}
