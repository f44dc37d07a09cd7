package logging

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// defaultMaxValueBytes is the default limit of one string value.
const defaultMaxValueBytes = 16 << 10

// maxDepth bounds group nesting, so a LogValuer that returns a group holding
// itself ends in a marker instead of a stack overflow.
const maxDepth = 32

// depthMarker replaces a group nested deeper than maxDepth.
const depthMarker = "!DEPTH: groups nested too deep"

// sink is what all writers derived from one New share.
type sink struct {
	mu       sync.Mutex
	w        io.Writer
	enc      encoder
	redactor Redactor
	fields   []slog.Attr
	sampling bool // a sampling stage may pass a sample_rate in the context
	ring     *LineRing
	buf      *batchWriter // nil: one write per line
	// directAccess: the access lines may be written from their fields
	// (access.go); false when the redactor counts one of their keys as
	// sensitive.
	directAccess bool
}

// emit writes one finished line and, when the line belongs to a trace,
// keeps it in the status page's ring.
func (h *lineWriter) emit(ctx context.Context, line []byte, level slog.Level) error {
	err := h.s.write(line, level)
	if h.s.ring != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			h.s.ring.add(sc.TraceID(), line)
		}
	}
	return err
}

// lineWriter is the terminal stage of the pipeline: it writes one JSON (or
// text) line per record in the contract's shape. It redacts and correlates
// inline, while encoding, rather than as separate stages that rebuild the
// record: that is what keeps a line within 1.3x of slog.JSONHandler (see
// bench_test.go). It does no level filtering; the Handler in front does.
type lineWriter struct {
	s      *sink
	name   string
	fixed  []byte // encoded Fields and logger
	frames []frame
}

// frame is the top of the line (frames[0]) or one open group.
type frame struct {
	group  string
	prefix string      // text format: dotted group path
	attrs  []slog.Attr // bound attributes, redacted, resolved, deduplicated
	enc    []byte      // attrs encoded, each with its leading separator
	keys   map[string]struct{}
}

func isReserved(k string) bool {
	switch k {
	case "time", "level", "msg", "logger", "trace_id", "span_id", "sample_rate",
		"service.name", "service.version", "deployment.environment":
		return true
	}
	return false
}

func newLineWriter(o *Options) *lineWriter {
	w := o.Writer
	if w == nil {
		w = io.Discard
	}
	max := o.MaxValueBytes
	if max == 0 {
		max = defaultMaxValueBytes
	} else if max < 0 {
		max = 0
	}
	s := &sink{
		w:        w,
		enc:      encoder{text: o.Format == "text", maxValue: max},
		redactor: o.Redactor,
		fields:   o.Fields,
		sampling: !o.Sampling.IsZero(),
		ring:     o.Ring,
	}
	s.directAccess = directAccess(s.redactor)
	if o.Buffered {
		s.buf = newBatchWriter(w, o.FlushInterval)
	}
	lw := &lineWriter{s: s, frames: []frame{{}}}
	lw.fixed = lw.encodeFixed()
	return lw
}

func (h *lineWriter) encodeFixed() []byte {
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

func (h *lineWriter) withName(name string) *lineWriter {
	h2 := *h
	h2.name = name
	h2.fixed = h2.encodeFixed()
	return &h2
}

// Enabled is always true: levels, per-request debug and sampling are decided
// before the record reaches the writer.
func (h *lineWriter) Enabled(context.Context, slog.Level) bool { return true }

// WithAttrs returns a writer whose lines carry as. They are redacted,
// resolved and encoded now, once.
func (h *lineWriter) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	return h.withAttrs(as)
}

func (h *lineWriter) withAttrs(as []slog.Attr) *lineWriter {
	if len(as) == 0 {
		return h
	}
	h2 := *h
	h2.frames = make([]frame, len(h.frames))
	copy(h2.frames, h.frames)
	i := len(h2.frames) - 1
	fr := h2.frames[i]
	merged := make([]slog.Attr, 0, len(fr.attrs)+len(as))
	merged = append(merged, fr.attrs...)
	for _, a := range as {
		merged = h.appendPrepared(merged, a, i == 0, 0)
	}
	fr.attrs = dedupe(merged)
	st := state{prefix: fr.prefix}
	for _, a := range fr.attrs {
		h.appendAttr(&st, a, 0)
	}
	fr.enc = st.b
	fr.keys = nil
	if len(fr.attrs) > 8 {
		fr.keys = make(map[string]struct{}, len(fr.attrs))
		for _, a := range fr.attrs {
			fr.keys[a.Key] = struct{}{}
		}
	}
	h2.frames[i] = fr
	return &h2
}

// WithGroup returns a writer that nests later attributes under name.
func (h *lineWriter) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.withGroup(name)
}

func (h *lineWriter) withGroup(name string) *lineWriter {
	if name == "" {
		return h
	}
	h2 := *h
	h2.frames = make([]frame, len(h.frames), len(h.frames)+1)
	copy(h2.frames, h.frames)
	prefix := name
	if p := h.frames[len(h.frames)-1].prefix; p != "" {
		prefix = p + "." + name
	}
	h2.frames = append(h2.frames, frame{group: name, prefix: prefix})
	return &h2
}

// appendPrepared resolves and redacts a, splits an error carrying a stack
// into the error and "<key>.stack", flattens inline groups (empty key) and
// renames reserved keys at the top level.
func (h *lineWriter) appendPrepared(dst []slog.Attr, a slog.Attr, top bool, depth int) []slog.Attr {
	a.Value = a.Value.Resolve()
	if st, ok := errorStack(a.Value); ok {
		dst = h.appendPrepared(dst, slog.String(a.Key, errorMessage(a.Value)), top, depth)
		return h.appendPrepared(dst, slog.String(a.Key+".stack", st), top, depth)
	}
	if h.s.redactor != nil {
		a = safeRedact(h.s.redactor, a)
	}
	return h.appendRedacted(dst, a, top, depth)
}

// withheld replaces a value whose redaction panicked: failing closed.
const withheld = "!REDACTION FAILED: value withheld"

// safeRedact redacts a with r, resolved; a panic in r withholds the value.
// The hot path (Handle's fast path) does without it: Handle recovers as a
// whole. WithAttrs and the redaction stage, which have no such net, use it.
func safeRedact(r Redactor, a slog.Attr) (out slog.Attr) {
	defer func() {
		if recover() != nil {
			out = slog.String(a.Key, withheld)
		}
	}()
	out = r.Attr(a)
	out.Value = out.Value.Resolve()
	return out
}

// appendRedacted is appendPrepared after redaction.
func (h *lineWriter) appendRedacted(dst []slog.Attr, a slog.Attr, top bool, depth int) []slog.Attr {
	if a.Equal(slog.Attr{}) {
		return dst
	}
	if a.Value.Kind() == slog.KindGroup && a.Key == "" {
		if depth >= maxDepth {
			return append(dst, slog.String("!DEPTH", depthMarker))
		}
		for _, ga := range a.Value.Group() {
			// Members of an inline group were redacted with it.
			ga.Value = ga.Value.Resolve()
			if st, ok := errorStack(ga.Value); ok {
				if h.s.redactor != nil {
					st = h.s.redactor.String(st)
				}
				dst = h.appendRedacted(dst, slog.String(ga.Key, errorMessage(ga.Value)), top, depth+1)
				ga = slog.String(ga.Key+".stack", st)
			}
			dst = h.appendRedacted(dst, ga, top, depth+1)
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
	if len(as) <= 16 {
		for i := 1; i < len(as) && !dup; i++ {
			for j := 0; j < i; j++ {
				if as[i].Key == as[j].Key {
					dup = true
					break
				}
			}
		}
	} else {
		seen := make(map[string]struct{}, len(as))
		for _, a := range as {
			if _, ok := seen[a.Key]; ok {
				dup = true
				break
			}
			seen[a.Key] = struct{}{}
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
func (h *lineWriter) appendAttr(st *state, a slog.Attr, depth int) {
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
	if depth >= maxDepth {
		st.key(e, a.Key)
		st.b = e.appendString(st.b, depthMarker)
		return
	}
	if a.Key == "" {
		for _, ga := range attrs {
			h.appendAttr(st, ga, depth+1)
		}
		return
	}
	attrs = h.groupMembers(attrs)
	if e.text {
		saved := st.prefix
		if saved == "" {
			st.prefix = a.Key
		} else {
			st.prefix = saved + "." + a.Key
		}
		for _, ga := range attrs {
			h.appendAttr(st, ga, depth+1)
		}
		st.prefix = saved
		return
	}
	st.key(e, a.Key)
	st.b = append(st.b, '{')
	st.first = true
	for _, ga := range attrs {
		if ga.Value.Kind() == slog.KindGroup || ga.Key != "" || !ga.Equal(slog.Attr{}) {
			h.appendAttr(st, ga, depth+1)
		}
	}
	st.first = false
	st.b = append(st.b, '}')
}

// groupMembers splits errors carrying a stack inside a group (the top level
// does it in appendPrepared) and removes duplicate keys.
func (h *lineWriter) groupMembers(attrs []slog.Attr) []slog.Attr {
	var out []slog.Attr
	for i, a := range attrs {
		st, ok := errorStack(a.Value.Resolve())
		if !ok {
			if out != nil {
				out = append(out, a)
			}
			continue
		}
		if out == nil {
			out = append(make([]slog.Attr, 0, len(attrs)+1), attrs[:i]...)
		}
		if h.s.redactor != nil {
			st = h.s.redactor.String(st)
		}
		out = append(out, slog.String(a.Key, errorMessage(a.Value.Resolve())), slog.String(a.Key+".stack", st))
	}
	if out != nil {
		attrs = out
	}
	return dedupe(attrs)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Handle writes one line. A panic while encoding (a redactor, a MarshalJSON
// deep inside a value) is contained: a shorter line saying so is written
// instead, so bad input never takes the program down.
func (h *lineWriter) Handle(ctx context.Context, r slog.Record) (err error) {
	bp := bufPool.Get().(*[]byte)
	st := state{b: (*bp)[:0]}
	defer func() {
		if p := recover(); p != nil {
			err = h.writeFallback(ctx, r, p)
		}
	}()
	e := &h.s.enc

	msg := r.Message
	if h.s.redactor != nil {
		msg = h.s.redactor.String(msg)
	}
	st.b = h.appendHeader(st.b, ctx, r.Time, r.Level, msg)

	// Bound attributes and open groups. The innermost frame receives the
	// record's attributes; outer groups are opened only if something will be
	// written inside them (slog drops empty groups).
	last := len(h.frames) - 1
	deepest := 0
	if r.NumAttrs() > 0 {
		deepest = last
	} else {
		for i := last; i > 0; i-- {
			if len(h.frames[i].enc) > 0 {
				deepest = i
				break
			}
		}
	}
	for i := 0; i <= deepest; i++ {
		fr := &h.frames[i]
		if i > 0 {
			st.prefix = fr.prefix
			if !e.text {
				st.key(e, fr.group)
				st.b = append(st.b, '{')
				st.first = true
			}
		}
		if i == last && r.NumAttrs() > 0 {
			h.appendRecordAttrs(&st, fr, r, i == 0)
			continue
		}
		h.appendEncoded(&st, fr.enc)
	}
	if !e.text {
		for i := 1; i <= deepest; i++ {
			st.b = append(st.b, '}')
		}
		st.b = append(st.b, '}')
	}
	st.b = append(st.b, '\n')

	err = h.emit(ctx, st.b, r.Level)
	if cap(st.b) <= 64<<10 {
		*bp = st.b
		bufPool.Put(bp)
	}
	return err
}

// appendHeader appends time, level, msg, the fixed fields, trace_id and
// span_id. msg is already redacted.
func (h *lineWriter) appendHeader(b []byte, ctx context.Context, t time.Time, l slog.Level, msg string) []byte {
	e := &h.s.enc
	if t.IsZero() {
		t = time.Now()
	}
	if e.text {
		b = append(b, "time="...)
		b = t.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, " level="...)
		b = appendLevel(b, l)
		b = append(b, " msg="...)
		b = e.appendTextString(b, msg)
	} else {
		b = append(b, `{"time":"`...)
		b = t.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","level":"`...)
		b = appendLevel(b, l)
		b = append(b, `","msg":`...)
		b = e.appendJSONString(b, msg)
	}
	b = append(b, h.fixed...)
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		tid, sid := sc.TraceID(), sc.SpanID()
		if e.text {
			b = append(b, " trace_id="...)
			b = hex.AppendEncode(b, tid[:])
			b = append(b, " span_id="...)
			b = hex.AppendEncode(b, sid[:])
		} else {
			b = append(b, `,"trace_id":"`...)
			b = hex.AppendEncode(b, tid[:])
			b = append(b, `","span_id":"`...)
			b = hex.AppendEncode(b, sid[:])
			b = append(b, '"')
		}
	}
	if h.s.sampling {
		if rate, ok := sampleRateFrom(ctx); ok {
			b = e.appendKey(b, "", "sample_rate")
			b = e.appendValue(b, slog.Float64Value(rate))
		}
	}
	return b
}

// writeFallback writes the line of a record whose encoding panicked: the
// header and a "logging.error" field instead of the attributes.
func (h *lineWriter) writeFallback(ctx context.Context, r slog.Record, p any) (err error) {
	defer func() {
		if q := recover(); q != nil {
			err = fmt.Errorf("logging: cannot write record: %v", q)
		}
	}()
	msg := "!REDACTION FAILED: message withheld"
	func() {
		defer func() { _ = recover() }()
		if h.s.redactor != nil {
			msg = h.s.redactor.String(r.Message)
		} else {
			msg = r.Message
		}
	}()
	b := h.appendHeader(nil, ctx, r.Time, r.Level, msg)
	b = h.s.enc.appendKey(b, "", "logging.error")
	b = h.s.enc.appendString(b, fmt.Sprintf("!PANIC while encoding attributes: %v", p))
	if !h.s.enc.text {
		b = append(b, '}')
	}
	b = append(b, '\n')
	return h.s.write(b, r.Level)
}

// write writes one line under the lock, or adds it to the buffer (which
// writes a WARN or ERROR line before returning). A Writer that panics (it is
// the program's) loses the line and leaves the lock released: holding it
// would hang every later log call.
func (s *sink) write(b []byte, l slog.Level) error {
	if s.buf != nil {
		return s.buf.write(b, l)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return writeRecovered(s.w, b)
}

// appendEncoded appends pre-encoded attributes, dropping the leading comma
// when they open an object.
func (h *lineWriter) appendEncoded(st *state, enc []byte) {
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

// appendRecordAttrs writes the frame's bound attributes and the record's.
// The fast path encodes directly, checking keys as it goes; a repeated key,
// an inline group, an error carrying a stack or more than 16 attributes
// send the frame to the slow path, which merges and deduplicates (a later
// attribute replaces an earlier one). Each attribute is redacted once either
// way, so the policy's counts stay exact.
func (h *lineWriter) appendRecordAttrs(st *state, fr *frame, r slog.Record, top bool) {
	mark, markFirst := len(st.b), st.first
	h.appendEncoded(st, fr.enc)
	var done [16]slog.Attr // written by the fast path, already prepared
	n := 0
	trigger := -1         // index of the attribute that sent us to the slow path
	var pending slog.Attr // that attribute, redacted when pendingRedacted
	pendingRedacted := false
	i := -1
	r.Attrs(func(a slog.Attr) bool {
		i++
		a.Value = a.Value.Resolve()
		if a.Value.Kind() == slog.KindAny {
			if _, ok := errorStack(a.Value); ok {
				trigger, pending = i, a
				return false
			}
		}
		if h.s.redactor != nil {
			a = h.s.redactor.Attr(a)
			a.Value = a.Value.Resolve()
		}
		if a.Equal(slog.Attr{}) {
			return true
		}
		slow := (a.Key == "" && a.Value.Kind() == slog.KindGroup) || (top && isReserved(a.Key)) || fr.has(a.Key) || n == len(done)
		for j := 0; j < n && !slow; j++ {
			slow = done[j].Key == a.Key
		}
		if slow {
			trigger, pending, pendingRedacted = i, a, true
			return false
		}
		done[n] = a
		n++
		h.appendAttr(st, a, 0)
		return true
	})
	if trigger < 0 {
		return
	}
	st.b, st.first = st.b[:mark], markFirst
	all := make([]slog.Attr, 0, len(fr.attrs)+r.NumAttrs()+1)
	all = append(all, fr.attrs...)
	all = append(all, done[:n]...)
	if pendingRedacted {
		all = h.appendRedacted(all, pending, top, 0)
	} else {
		all = h.appendPrepared(all, pending, top, 0)
	}
	i = -1
	r.Attrs(func(a slog.Attr) bool {
		if i++; i > trigger {
			all = h.appendPrepared(all, a, top, 0)
		}
		return true
	})
	for _, a := range dedupe(all) {
		h.appendAttr(st, a, 0)
	}
}

func (fr *frame) has(k string) bool {
	if fr.keys != nil {
		_, ok := fr.keys[k]
		return ok
	}
	for i := range fr.attrs {
		if fr.attrs[i].Key == k {
			return true
		}
	}
	return false
}
