package redact

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
)

// typeInfo is the precomputed walk of one type, per policy (field names are
// sensitive or not according to the policy's keys).
type typeInfo struct {
	kind      reflect.Kind
	walk      bool // values may need redaction; false: pass them on untouched
	logValuer bool // implements slog.LogValuer: resolved, never passed on as is
	isError   bool // implements error: its text is what gets printed
	isURL     bool // url.URL
	bytes     bool // a byte slice, inspected as text
	elem      *typeInfo
	key       *typeInfo
	fields    []fieldInfo
}

type fieldInfo struct {
	index     int
	name      string // json name, else the Go name
	exported  bool
	sensitive bool
	omit      bool // json:"-"
	omitEmpty bool
	inline    bool // embedded struct without a json name: its fields are promoted
	info      *typeInfo
}

type typeCache struct {
	m  sync.Map // reflect.Type → *typeInfo
	mu sync.Mutex
}

var (
	logValuerType = reflect.TypeFor[slog.LogValuer]()
	errorType     = reflect.TypeFor[error]()
	urlType       = reflect.TypeFor[url.URL]()
	// opaqueTypes hold no secrets worth walking into; they are passed on as is.
	opaqueTypes = map[reflect.Type]bool{
		reflect.TypeFor[time.Time]():      true,
		reflect.TypeFor[time.Location]():  true,
		reflect.TypeFor[netip.Addr]():     true,
		reflect.TypeFor[netip.Prefix]():   true,
		reflect.TypeFor[netip.AddrPort](): true,
		reflect.TypeFor[net.IP]():         true,
		reflect.TypeFor[net.IPNet]():      true,
		reflect.TypeFor[net.IPMask]():     true,
		reflect.TypeFor[big.Int]():        true,
		reflect.TypeFor[big.Float]():      true,
		reflect.TypeFor[big.Rat]():        true,
		reflect.TypeFor[slog.Level]():     true,
	}
)

func (p *Policy) typeInfo(t reflect.Type) *typeInfo {
	if ti, ok := p.types.m.Load(t); ok {
		return ti.(*typeInfo)
	}
	p.types.mu.Lock()
	defer p.types.mu.Unlock()
	building := map[reflect.Type]*typeInfo{}
	ti := p.buildType(t, building)
	for t, ti := range building {
		p.types.m.Store(t, ti)
	}
	return ti
}

func (p *Policy) buildType(t reflect.Type, building map[reflect.Type]*typeInfo) *typeInfo {
	if ti, ok := p.types.m.Load(t); ok {
		return ti.(*typeInfo)
	}
	if ti, ok := building[t]; ok {
		return ti // a recursive type: its walk flag is still true, conservatively
	}
	ti := &typeInfo{kind: t.Kind(), walk: true}
	building[t] = ti
	if opaqueTypes[t] {
		ti.walk = false
		return ti
	}
	ti.logValuer = t.Implements(logValuerType)
	ti.isError = t.Implements(errorType)
	ti.isURL = t == urlType
	walk := ti.logValuer || ti.isError || ti.isURL
	switch t.Kind() {
	case reflect.String, reflect.Interface:
		walk = true
	case reflect.Slice:
		ti.elem = p.buildType(t.Elem(), building)
		ti.bytes = t.Elem().Kind() == reflect.Uint8
		walk = walk || ti.bytes || ti.elem.walk
	case reflect.Array:
		ti.elem = p.buildType(t.Elem(), building)
		walk = walk || ti.elem.walk
	case reflect.Pointer:
		ti.elem = p.buildType(t.Elem(), building)
		walk = walk || ti.elem.walk
	case reflect.Map:
		ti.key = p.buildType(t.Key(), building)
		ti.elem = p.buildType(t.Elem(), building)
		walk = walk || t.Key().Kind() == reflect.String || ti.key.walk || ti.elem.walk
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			f := fieldInfo{index: i, name: sf.Name, exported: sf.IsExported()}
			jsonName, opts, _ := strings.Cut(sf.Tag.Get("json"), ",")
			switch {
			case jsonName == "-" && opts == "":
				f.omit = true
			case jsonName != "":
				f.name = jsonName
			}
			f.omitEmpty = strings.Contains(","+opts+",", ",omitempty,")
			switch sf.Tag.Get("redact") {
			case "true":
				f.sensitive = true
			case "false":
			default:
				f.sensitive = p.keys.match(sf.Name) || jsonName != "" && jsonName != "-" && p.keys.match(jsonName)
			}
			ft := sf.Type
			if sf.Anonymous && jsonName == "" && f.exported {
				if ft.Kind() == reflect.Struct || ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
					f.inline = true
				}
			}
			f.info = p.buildType(ft, building)
			walk = walk || f.sensitive || f.info.walk
			ti.fields = append(ti.fields, f)
		}
	default:
		// Numbers, bools, channels, funcs, unsafe pointers: nothing to read.
	}
	ti.walk = walk
	return ti
}

// urlOf returns v as a *url.URL when it is a url.URL the policy may read.
func urlOf(v reflect.Value, ti *typeInfo) (*url.URL, bool) {
	if !ti.isURL || !v.CanInterface() {
		return nil, false
	}
	if v.CanAddr() {
		return v.Addr().Interface().(*url.URL), true
	}
	u := v.Interface().(url.URL)
	return &u, true
}

type walkState struct {
	depth  int
	budget int
}

func canCall(v reflect.Value) bool {
	if !v.CanInterface() {
		return false
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
		return !v.IsNil()
	}
	return true
}

// dirty reports whether rebuild would change v.
func (p *Policy) dirty(v reflect.Value, ti *typeInfo, w *walkState) bool {
	if !ti.walk {
		return false
	}
	if w.budget <= 0 || w.depth >= maxDepth {
		return true
	}
	w.budget--
	if ti.logValuer && canCall(v) {
		return true
	}
	if ti.isError && canCall(v) {
		err := v.Interface().(error)
		_, marshals := err.(json.Marshaler)
		return marshals || p.dirtyString(errorText(err))
	}
	if u, ok := urlOf(v, ti); ok {
		return p.urlDirty(u)
	}
	w.depth++
	defer func() { w.depth-- }()
	switch ti.kind {
	case reflect.String:
		return p.dirtyString(v.String())
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return false
		}
		e := v.Elem()
		eti := ti.elem
		if ti.kind == reflect.Interface {
			eti = p.typeInfo(e.Type())
		}
		return p.dirty(e, eti, w)
	case reflect.Slice:
		if v.IsNil() {
			return false
		}
		if ti.bytes {
			return p.dirtyString(bytesString(v.Bytes()))
		}
		fallthrough
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if p.dirty(v.Index(i), ti.elem, w) {
				return true
			}
		}
	case reflect.Map:
		return p.mapDirty(v, ti, w)
	case reflect.Struct:
		for i := range ti.fields {
			f := &ti.fields[i]
			if f.sensitive || p.dirty(v.Field(f.index), f.info, w) {
				return true
			}
		}
	}
	return false
}

func (p *Policy) mapDirty(v reflect.Value, ti *typeInfo, w *walkState) bool {
	if v.IsNil() {
		return false
	}
	if v.CanInterface() {
		switch m := v.Interface().(type) {
		case map[string]string:
			for k, s := range m {
				if p.keys.match(k) || p.dirtyString(k) || p.dirtyString(s) {
					return true
				}
			}
			return false
		case map[string]any:
			for k, x := range m {
				if p.keys.match(k) || p.dirtyString(k) {
					return true
				}
				if x == nil {
					continue
				}
				if w.budget--; w.budget <= 0 {
					return true
				}
				if s, ok := x.(string); ok {
					if p.dirtyString(s) {
						return true
					}
					continue
				}
				e := reflect.ValueOf(x)
				if p.dirty(e, p.typeInfo(e.Type()), w) {
					return true
				}
			}
			return false
		}
	}
	stringKeys := ti.key.kind == reflect.String
	it := v.MapRange()
	for it.Next() {
		k := it.Key()
		if stringKeys && (p.keys.match(k.String()) || p.dirtyString(k.String())) {
			return true
		}
		if !stringKeys && p.dirty(k, ti.key, w) || p.dirty(it.Value(), ti.elem, w) {
			return true
		}
	}
	return false
}

// asIs passes a value on unchanged.
func asIs(v reflect.Value) slog.Value {
	if !v.IsValid() || !v.CanInterface() {
		return slog.AnyValue(nil)
	}
	return slog.AnyValue(v.Interface())
}

// rebuild returns the redacted form of v (see Policy.Value).
func (p *Policy) rebuild(v reflect.Value, ti *typeInfo, w *walkState) slog.Value {
	if !ti.walk {
		return asIs(v)
	}
	if w.budget <= 0 || w.depth >= maxDepth {
		return slog.StringValue(truncated)
	}
	w.budget--
	if ti.logValuer && canCall(v) {
		r, _ := p.value(p.resolve(slog.AnyValue(v.Interface())), w.depth+1)
		return r
	}
	if ti.isError && canCall(v) {
		s, _ := p.redactString(errorText(v.Interface().(error)))
		return slog.StringValue(s)
	}
	if u, ok := urlOf(v, ti); ok {
		return slog.StringValue(p.URL(u))
	}
	w.depth++
	defer func() { w.depth-- }()
	switch ti.kind {
	case reflect.String:
		s, _ := p.redactString(v.String())
		return slog.StringValue(s)
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return slog.AnyValue(nil)
		}
		e := v.Elem()
		eti := ti.elem
		if ti.kind == reflect.Interface {
			eti = p.typeInfo(e.Type())
		}
		return p.rebuild(e, eti, w)
	case reflect.Slice:
		if v.IsNil() {
			return slog.AnyValue(nil)
		}
		if ti.bytes {
			s, _ := p.redactString(string(v.Bytes()))
			return slog.StringValue(s)
		}
		fallthrough
	case reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = toAny(p.rebuild(v.Index(i), ti.elem, w))
		}
		return slog.AnyValue(out)
	case reflect.Map:
		return p.rebuildMap(v, ti, w)
	case reflect.Struct:
		as := make([]slog.Attr, 0, len(ti.fields))
		as = p.appendFields(as, v, ti, w)
		return slog.GroupValue(as...)
	}
	return asIs(v)
}

func (p *Policy) appendFields(as []slog.Attr, v reflect.Value, ti *typeInfo, w *walkState) []slog.Attr {
	for i := range ti.fields {
		f := &ti.fields[i]
		if !f.exported || f.omit {
			continue
		}
		fv := v.Field(f.index)
		if f.omitEmpty && isEmptyValue(fv) {
			continue
		}
		if f.sensitive {
			text, ok := reflectText(fv)
			as = append(as, slog.String(f.name, p.keyMask(text, ok)))
			continue
		}
		if f.inline && w.depth < maxDepth {
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					continue
				}
				fv = fv.Elem()
				w.depth++
				as = p.appendFields(as, fv, f.info.elem, w)
				w.depth--
				continue
			}
			w.depth++
			as = p.appendFields(as, fv, f.info, w)
			w.depth--
			continue
		}
		as = append(as, slog.Attr{Key: f.name, Value: p.rebuild(fv, f.info, w)})
	}
	return as
}

// isEmptyValue is encoding/json's notion of empty, for omitempty.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

func (p *Policy) rebuildMap(v reflect.Value, ti *typeInfo, w *walkState) slog.Value {
	if v.IsNil() {
		return slog.AnyValue(nil)
	}
	type entry struct {
		key string
		k   reflect.Value
		v   reflect.Value
	}
	entries := make([]entry, 0, v.Len())
	it := v.MapRange()
	for it.Next() {
		k := it.Key()
		var name string
		if k.Kind() == reflect.String {
			name = k.String()
		} else if text, ok := reflectText(k); ok {
			name = text
		} else {
			name = fmt.Sprint(toAny(p.rebuild(k, ti.key, w)))
		}
		entries = append(entries, entry{name, k, it.Value()})
	}
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(a.key, b.key) })
	as := make([]slog.Attr, 0, len(entries))
	for _, e := range entries {
		name, _ := p.redactString(e.key)
		if e.k.Kind() == reflect.String && p.keys.match(e.key) {
			text, ok := reflectText(e.v)
			as = append(as, slog.String(name, p.keyMask(text, ok)))
			continue
		}
		as = append(as, slog.Attr{Key: name, Value: p.rebuild(e.v, ti.elem, w)})
	}
	return slog.GroupValue(as...)
}

// toAny turns a rebuilt value into a plain Go value for use inside []any:
// groups become map[string]any so that JSON handlers can marshal them.
func toAny(v slog.Value) any {
	if v.Kind() != slog.KindGroup {
		return v.Any()
	}
	as := v.Group()
	m := make(map[string]any, len(as))
	for _, a := range as {
		m[a.Key] = toAny(a.Value)
	}
	return m
}
