package logging

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
)

// exportStage is the last stage of the export branch, a slog handler in
// front of the OTel slog bridge. It gives the bridge what the line writer
// writes (redaction is done before the fanout, by redactStage): errors as
// their message plus "<key>.stack", strings cut at MaxValueBytes and made
// valid UTF-8 (protobuf rejects anything else, and one bad string would
// fail a whole export batch), values of other types encoded as the line
// would hold them, and sample_rate at the top level.
//
// It keeps With attributes and groups itself, prepared once, and hands the
// bridge one flat record per line, so attributes bound before a group stay
// outside it.
type exportStage struct {
	maxValue int
	next     slog.Handler // the bridge, without attributes or groups
	// async, with observe's own Provider, takes the record and has it
	// converted off the caller's path (see batchProcessor.enqueue); with
	// any other LoggerProvider the bridge is called in line, with the
	// caller's context, which its processors may read.
	async *batchProcessor
	// owned: the records reaching Handle are the redaction stage's own
	// copies, which nothing touches after the fanout, so they may be kept
	// without a copy.
	owned  bool
	frames []exportFrame
}

type exportFrame struct {
	group string
	attrs []slog.Attr // prepared
}

func (x *exportStage) Enabled(ctx context.Context, l slog.Level) bool {
	if isLineOnly(ctx) {
		return false // the export's own WARN lines
	}
	return x.next.Enabled(ctx, l)
}

func (x *exportStage) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return x
	}
	x2 := *x
	x2.frames = append([]exportFrame(nil), x.frames...)
	if len(x2.frames) == 0 {
		x2.frames = append(x2.frames, exportFrame{})
	}
	last := &x2.frames[len(x2.frames)-1]
	attrs := append([]slog.Attr(nil), last.attrs...)
	for _, a := range as {
		attrs = x.prepare(attrs, a, 0)
	}
	last.attrs = attrs
	return &x2
}

func (x *exportStage) WithGroup(name string) slog.Handler {
	if name == "" {
		return x
	}
	x2 := *x
	x2.frames = append([]exportFrame(nil), x.frames...)
	if len(x2.frames) == 0 {
		x2.frames = append(x2.frames, exportFrame{})
	}
	x2.frames = append(x2.frames, exportFrame{group: name})
	return &x2
}

func (x *exportStage) Handle(ctx context.Context, r slog.Record) error {
	rate, hasRate := sampleRateFrom(ctx)
	if x.async == nil {
		return x.next.Handle(ctx, x.build(r, rate, hasRate))
	}
	pr := pendingRecord{sc: trace.SpanContextFromContext(ctx), rate: rate, hasRate: hasRate}
	if plainRecord(r) {
		// Nothing of the caller's is left to call (no LogValuer, no error,
		// no value of another type to encode) and strings do not change:
		// the worker prepares the record too.
		if !x.owned {
			r = r.Clone()
		}
		pr.r, pr.x = r, x
	} else {
		pr.r = x.build(r, rate, hasRate)
	}
	x.async.enqueue(pr)
	return nil
}

// build returns the record the bridge is given: r's attributes prepared,
// after the handler's own, nested in its groups, with sample_rate.
func (x *exportStage) build(r slog.Record, rate float64, hasRate bool) slog.Record {
	out := slog.NewRecord(r.Time, r.Level, x.clean(r.Message), r.PC)

	var buf [16]slog.Attr
	inner := buf[:0]
	r.Attrs(func(a slog.Attr) bool {
		inner = x.prepare(inner, a, 0)
		return true
	})
	// Nest from the innermost group out; empty groups vanish, as in slog.
	for i := len(x.frames) - 1; i >= 1; i-- {
		f := x.frames[i]
		members := append(append([]slog.Attr(nil), f.attrs...), inner...)
		inner = nil
		if len(members) > 0 {
			inner = []slog.Attr{{Key: x.clean(f.group), Value: slog.GroupValue(members...)}}
		}
	}
	if len(x.frames) > 0 {
		out.AddAttrs(x.frames[0].attrs...)
	}
	out.AddAttrs(inner...)
	if hasRate {
		out.AddAttrs(slog.Float64("sample_rate", rate))
	}
	return out
}

// plainRecord reports whether every attribute of r holds a value of a
// basic kind, which preparing it later cannot change or fail on.
func plainRecord(r slog.Record) bool {
	plain := true
	r.Attrs(func(a slog.Attr) bool {
		plain = plainValue(a.Value)
		return plain
	})
	return plain
}

func plainValue(v slog.Value) bool {
	switch v.Kind() {
	case slog.KindString, slog.KindInt64, slog.KindUint64, slog.KindFloat64,
		slog.KindBool, slog.KindDuration, slog.KindTime:
		return true
	}
	// Groups too are prepared in line: their slices are the caller's.
	return false
}

// prepare appends a, resolved, redacted and cleaned, to dst.
func (x *exportStage) prepare(dst []slog.Attr, a slog.Attr, depth int) []slog.Attr {
	a.Value = a.Value.Resolve()
	if st, ok := errorStack(a.Value); ok {
		dst = x.prepare(dst, slog.String(a.Key, errorMessage(a.Value)), depth)
		return x.prepare(dst, slog.String(a.Key+".stack", st), depth)
	}
	if a.Equal(slog.Attr{}) {
		return dst
	}
	a.Key = x.clean(a.Key)
	switch a.Value.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(x.clean(a.Value.String()))
	case slog.KindGroup:
		if depth >= maxDepth {
			return append(dst, slog.String(a.Key, depthMarker))
		}
		var members []slog.Attr
		for _, m := range a.Value.Group() {
			members = x.prepare(members, m, depth+1)
		}
		if len(members) == 0 {
			return dst
		}
		if a.Key == "" {
			return append(dst, members...)
		}
		a.Value = slog.GroupValue(members...)
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case nil:
			return dst
		case error:
			a.Value = slog.StringValue(x.clean(errorMessage(a.Value)))
		case []byte:
			// Bytes go as bytes.
		default:
			// Anything else as the line would write it (JSON), so a value
			// that cannot be converted never fails the export.
			e := encoder{maxValue: x.maxValue}
			raw := e.appendAny(nil, v)
			var text string
			if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &text) != nil {
				text = string(raw) // JSON other than a string: keep it as JSON
			}
			a.Value = slog.StringValue(x.clean(text))
		}
	}
	return append(dst, a)
}

// clean makes s valid UTF-8 and cuts it at maxValue bytes, with the line
// writer's marker.
func (x *exportStage) clean(s string) string {
	if x.maxValue > 0 && len(s) > x.maxValue {
		cut := x.maxValue
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + truncMarker
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// redactStage redacts each record once, in front of the fanout to the line
// writer and the export branch: the message, every attribute (an error
// carrying a stack first split into "<key>" and "<key>.stack", as the
// writer would), and With attributes once per WithAttrs.
type redactStage struct {
	r    Redactor
	next slog.Handler
}

func (rs *redactStage) stage(next slog.Handler) slog.Handler {
	return &redactStage{r: rs.r, next: next}
}

func (rs *redactStage) Enabled(ctx context.Context, l slog.Level) bool {
	return rs.next.Enabled(ctx, l)
}

func (rs *redactStage) Handle(ctx context.Context, r slog.Record) error {
	msg, ok := rs.message(r.Message)
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	if !ok {
		out.AddAttrs(slog.String("logging.error", "!PANIC while redacting the message"))
	}
	// Gather first and add once: one allocation for the record's attributes
	// past the five it holds in line, not one per attribute.
	var buf [16]slog.Attr
	as := buf[:0]
	r.Attrs(func(a slog.Attr) bool {
		as = rs.attr(as, a)
		return true
	})
	out.AddAttrs(as...)
	return rs.next.Handle(ctx, out)
}

func (rs *redactStage) mustMessage(msg string) string {
	out, _ := rs.message(msg)
	return out
}

// message redacts msg; a panic in the policy withholds it.
func (rs *redactStage) message(msg string) (out string, ok bool) {
	defer func() {
		if recover() != nil {
			out, ok = "!REDACTION FAILED: message withheld", false
		}
	}()
	return rs.r.String(msg), true
}

func (rs *redactStage) WithAttrs(as []slog.Attr) slog.Handler {
	return &redactStage{r: rs.r, next: rs.next.WithAttrs(rs.attrs(as))}
}

func (rs *redactStage) WithGroup(name string) slog.Handler {
	return &redactStage{r: rs.r, next: rs.next.WithGroup(name)}
}

// attrs returns as redacted, in a new slice.
func (rs *redactStage) attrs(as []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, 0, len(as))
	for _, a := range as {
		out = rs.attr(out, a)
	}
	return out
}

func (rs *redactStage) attr(dst []slog.Attr, a slog.Attr) []slog.Attr {
	a.Value = a.Value.Resolve()
	if st, ok := errorStack(a.Value); ok {
		return append(dst,
			safeRedact(rs.r, slog.String(a.Key, errorMessage(a.Value))),
			safeRedact(rs.r, slog.String(a.Key+".stack", st)))
	}
	return append(dst, safeRedact(rs.r, a))
}
