// Package logging is observe's slog pipeline: a handler that writes one JSON
// (or text) line per record in observe's shape — time, level, msg, the service
// fields, logger, trace_id and span_id from the context, then the record's
// attributes, with no key twice — plus runtime level control per logger.
//
// Work that can be done once is done in WithAttrs/WithGroup: bound attributes
// are redacted, resolved and encoded there, not per record. Enabled is an
// atomic load.
package logging

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Redactor is the redaction policy the handler applies to every message and
// attribute (redact.Policy implements it).
type Redactor interface {
	String(s string) string
	Attr(a slog.Attr) slog.Attr
}

// Options configure a Handler.
type Options struct {
	Writer io.Writer        // default io.Discard
	Format string           // "json" (default) or "text"
	Levels *LevelController // default: a controller at INFO
	// Fields are written on every line right after msg, encoded once
	// (service.name, service.version, deployment.environment).
	Fields   []slog.Attr
	Redactor Redactor // nil: no redaction
	// MaxValueBytes truncates longer string values with a marker (default
	// 16 KiB; negative: no limit).
	MaxValueBytes int
}

// DefaultMaxValueBytes is the default limit of one string value.
const DefaultMaxValueBytes = 16 << 10

// sink is what all handlers derived from one New share.
type sink struct {
	mu       sync.Mutex
	w        io.Writer
	enc      encoder
	levels   *LevelController
	redactor Redactor
	fields   []slog.Attr
}

// Handler is observe's slog.Handler.
type Handler struct {
	s      *sink
	name   string
	fixed  []byte // encoded Fields and logger
	levels []level
}

// level is the top of the line (levels[0]) or one open group.
type level struct {
	group  string
	prefix string      // text format: dotted group path
	attrs  []slog.Attr // bound attributes, redacted, resolved, deduplicated
	enc    []byte      // attrs encoded, each with its leading separator
	keys   map[string]struct{}
}

// reservedKeys are written by the handler itself at the top of the line; a
// user attribute with one of these keys is written as "attr.<key>".
var reservedKeys = map[string]struct{}{
	"time": {}, "level": {}, "msg": {}, "logger": {}, "trace_id": {}, "span_id": {},
	"service.name": {}, "service.version": {}, "deployment.environment": {},
}

func isReserved(k string) bool {
	switch k {
	case "time", "level", "msg", "logger", "trace_id", "span_id",
		"service.name", "service.version", "deployment.environment":
		return true
	}
	return false
}

// New returns a handler writing to o.Writer.
func New(o Options) *Handler {
	if o.Writer == nil {
		o.Writer = io.Discard
	}
	if o.Levels == nil {
		o.Levels = NewLevelController(slog.LevelInfo)
	}
	max := o.MaxValueBytes
	if max == 0 {
		max = DefaultMaxValueBytes
	} else if max < 0 {
		max = 0
	}
	s := &sink{
		w:        o.Writer,
		enc:      encoder{text: o.Format == "text", maxValue: max},
		levels:   o.Levels,
		redactor: o.Redactor,
		fields:   o.Fields,
	}
	h := &Handler{s: s, levels: []level{{}}}
	h.fixed = h.encodeFixed()
	return h
}

func (h *Handler) encodeFixed() []byte {
	var b []byte
	for _, f := range h.s.fields {
		if f.Value.Kind() == slog.KindString && f.Value.String() == "" {
			continue
		}
		b = h.s.enc.appendKey(b, "", f.Key)
		b = h.s.enc.appendValue(b, f.Value.Resolve())
	}
	if h.name != "" {
		b = h.s.enc.appendKey(b, "", "logger")
		b = h.s.enc.appendString(b, h.name)
	}
	return b
}

// Levels returns the level controller.
func (h *Handler) Levels() *LevelController { return h.s.levels }

// Name returns the logger name ("" for the root logger).
func (h *Handler) Name() string { return h.name }

// WithName returns a handler for the named logger: its lines carry
// "logger":name and its level follows the controller's level for name.
func (h *Handler) WithName(name string) *Handler {
	h2 := *h
	h2.name = name
	h2.fixed = h2.encodeFixed()
	return &h2
}

// Enabled reports whether a record at l would be written.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.s.levels.LevelFor(h.name)
}

// WithAttrs returns a handler whose lines carry as. They are redacted,
// resolved and encoded now, once.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	h2 := *h
	h2.levels = make([]level, len(h.levels))
	copy(h2.levels, h.levels)
	i := len(h2.levels) - 1
	lv := h2.levels[i]
	merged := make([]slog.Attr, 0, len(lv.attrs)+len(as))
	merged = append(merged, lv.attrs...)
	for _, a := range as {
		merged = h.appendPrepared(merged, a, i == 0)
	}
	lv.attrs = dedupe(merged)
	lv.enc = nil
	st := state{b: nil, prefix: lv.prefix}
	for _, a := range lv.attrs {
		h.appendAttr(&st, a)
	}
	lv.enc = st.b
	lv.keys = nil
	if len(lv.attrs) > 8 {
		lv.keys = make(map[string]struct{}, len(lv.attrs))
		for _, a := range lv.attrs {
			lv.keys[a.Key] = struct{}{}
		}
	}
	h2.levels[i] = lv
	return &h2
}

// WithGroup returns a handler that nests later attributes under name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.levels = make([]level, len(h.levels), len(h.levels)+1)
	copy(h2.levels, h.levels)
	prefix := name
	if p := h.levels[len(h.levels)-1].prefix; p != "" {
		prefix = p + "." + name
	}
	h2.levels = append(h2.levels, level{group: name, prefix: prefix})
	return &h2
}

// appendPrepared redacts and resolves a, flattens inline groups (empty key)
// and renames reserved keys at the top level.
func (h *Handler) appendPrepared(dst []slog.Attr, a slog.Attr, top bool) []slog.Attr {
	if h.s.redactor != nil {
		a = h.s.redactor.Attr(a)
	}
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return dst
	}
	if a.Value.Kind() == slog.KindGroup && a.Key == "" {
		for _, ga := range a.Value.Group() {
			dst = h.appendPrepared(dst, ga, top)
		}
		return dst
	}
	if top && isReserved(a.Key) {
		a.Key = "attr." + a.Key
	}
	return append(dst, a)
}

// dedupe keeps the last attribute of each key, at its last position.
func dedupe(as []slog.Attr) []slog.Attr {
	dup := false
	for i := 1; i < len(as) && !dup; i++ {
		for j := 0; j < i; j++ {
			if as[i].Key == as[j].Key {
				dup = true
				break
			}
		}
	}
	if !dup {
		return as
	}
	seen := make(map[string]struct{}, len(as))
	out := make([]slog.Attr, 0, len(as))
	for i := len(as) - 1; i >= 0; i-- {
		if _, ok := seen[as[i].Key]; ok {
			continue
		}
		seen[as[i].Key] = struct{}{}
		out = append(out, as[i])
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

type state struct {
	b      []byte
	prefix string
	first  bool // JSON: the next key opens an object and takes no comma
}

func (st *state) key(e *encoder, k string) {
	if st.first && !e.text {
		st.b = e.appendJSONString(st.b, k)
		st.b = append(st.b, ':')
		st.first = false
		return
	}
	st.b = e.appendKey(st.b, st.prefix, k)
}

// appendAttr encodes one prepared attribute.
func (h *Handler) appendAttr(st *state, a slog.Attr) {
	e := &h.s.enc
	v := a.Value.Resolve()
	if v.Kind() != slog.KindGroup {
		st.key(e, a.Key)
		st.b = e.appendValue(st.b, v)
		return
	}
	attrs := v.Group()
	if len(attrs) == 0 {
		return
	}
	if a.Key == "" {
		for _, ga := range attrs {
			h.appendAttr(st, ga)
		}
		return
	}
	attrs = dedupe(attrs)
	if e.text {
		saved := st.prefix
		if saved == "" {
			st.prefix = a.Key
		} else {
			st.prefix = saved + "." + a.Key
		}
		for _, ga := range attrs {
			h.appendAttr(st, ga)
		}
		st.prefix = saved
		return
	}
	st.key(e, a.Key)
	st.b = append(st.b, '{')
	st.first = true
	for _, ga := range attrs {
		if ga.Value.Kind() == slog.KindGroup || ga.Key != "" || !ga.Equal(slog.Attr{}) {
			h.appendAttr(st, ga)
		}
	}
	st.first = false
	st.b = append(st.b, '}')
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Handle writes one line.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	bp := bufPool.Get().(*[]byte)
	st := state{b: (*bp)[:0]}
	e := &h.s.enc

	// Header: time, level, msg.
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	msg := r.Message
	if h.s.redactor != nil {
		msg = h.s.redactor.String(msg)
	}
	if e.text {
		st.b = append(st.b, "time="...)
		st.b = t.UTC().AppendFormat(st.b, time.RFC3339Nano)
		st.b = append(st.b, " level="...)
		st.b = appendLevel(st.b, r.Level)
		st.b = append(st.b, " msg="...)
		st.b = e.appendTextString(st.b, msg)
	} else {
		st.b = append(st.b, `{"time":"`...)
		st.b = t.UTC().AppendFormat(st.b, time.RFC3339Nano)
		st.b = append(st.b, `","level":"`...)
		st.b = appendLevel(st.b, r.Level)
		st.b = append(st.b, `","msg":`...)
		st.b = e.appendJSONString(st.b, msg)
	}
	st.b = append(st.b, h.fixed...)
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		tid, sid := sc.TraceID(), sc.SpanID()
		if e.text {
			st.b = append(st.b, " trace_id="...)
			st.b = hex.AppendEncode(st.b, tid[:])
			st.b = append(st.b, " span_id="...)
			st.b = hex.AppendEncode(st.b, sid[:])
		} else {
			st.b = append(st.b, `,"trace_id":"`...)
			st.b = hex.AppendEncode(st.b, tid[:])
			st.b = append(st.b, `","span_id":"`...)
			st.b = hex.AppendEncode(st.b, sid[:])
			st.b = append(st.b, '"')
		}
	}

	// Bound attributes and open groups. The innermost level receives the
	// record's attributes; outer groups are opened only if something will be
	// written inside them (slog drops empty groups).
	last := len(h.levels) - 1
	deepest := 0
	if r.NumAttrs() > 0 {
		deepest = last
	} else {
		for i := last; i > 0; i-- {
			if len(h.levels[i].enc) > 0 {
				deepest = i
				break
			}
		}
	}
	for i := 0; i <= deepest; i++ {
		lv := &h.levels[i]
		if i > 0 {
			st.prefix = lv.prefix
			if !e.text {
				st.key(e, lv.group)
				st.b = append(st.b, '{')
				st.first = true
			}
		}
		if i == last && r.NumAttrs() > 0 {
			h.appendRecordAttrs(&st, lv, r, i == 0)
			continue
		}
		h.appendEncoded(&st, lv.enc)
	}
	if !e.text {
		for i := 1; i <= deepest; i++ {
			st.b = append(st.b, '}')
		}
		st.b = append(st.b, '}')
	}
	st.b = append(st.b, '\n')

	h.s.mu.Lock()
	_, err := h.s.w.Write(st.b)
	h.s.mu.Unlock()
	if cap(st.b) <= 64<<10 {
		*bp = st.b
		bufPool.Put(bp)
	}
	return err
}

// appendEncoded appends pre-encoded attributes, dropping the leading comma
// when they open an object.
func (h *Handler) appendEncoded(st *state, enc []byte) {
	if len(enc) == 0 {
		return
	}
	if st.first && !h.s.enc.text {
		st.b = append(st.b, enc[1:]...)
		st.first = false
		return
	}
	st.b = append(st.b, enc...)
}

// appendRecordAttrs writes the level's bound attributes and the record's.
// The fast path encodes directly, checking keys as it goes; a repeated key
// or an inline group sends the level to the slow path, which merges and
// deduplicates (a later attribute replaces an earlier one).
func (h *Handler) appendRecordAttrs(st *state, lv *level, r slog.Record, top bool) {
	mark, markFirst := len(st.b), st.first
	h.appendEncoded(st, lv.enc)
	var seenArr [16]string
	seen := seenArr[:0]
	slow := false
	r.Attrs(func(a slog.Attr) bool {
		if h.s.redactor != nil {
			a = h.s.redactor.Attr(a)
		}
		a.Value = a.Value.Resolve()
		if a.Equal(slog.Attr{}) {
			return true
		}
		if (a.Key == "" && a.Value.Kind() == slog.KindGroup) || (top && isReserved(a.Key)) || lv.has(a.Key) {
			slow = true
			return false
		}
		for _, k := range seen {
			if k == a.Key {
				slow = true
				return false
			}
		}
		if len(seen) < cap(seenArr) {
			seen = append(seen, a.Key)
		} else {
			slow = true // too many to track cheaply; let the slow path check
			return false
		}
		h.appendAttr(st, a)
		return true
	})
	if !slow {
		return
	}
	st.b, st.first = st.b[:mark], markFirst
	all := make([]slog.Attr, 0, len(lv.attrs)+r.NumAttrs())
	all = append(all, lv.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		all = h.appendPrepared(all, a, top)
		return true
	})
	for _, a := range dedupe(all) {
		h.appendAttr(st, a)
	}
}

func (lv *level) has(k string) bool {
	if lv.keys != nil {
		_, ok := lv.keys[k]
		return ok
	}
	for i := range lv.attrs {
		if lv.attrs[i].Key == k {
			return true
		}
	}
	return false
}
