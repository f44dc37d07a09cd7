package redact

import (
	"context"
	"log/slog"
)

// NewHandler returns a slog.Handler that redacts with p and passes records on
// to next: the message as [Policy.String], every attribute as [Policy.Attr].
// Attributes bound with With are redacted once, when bound, not per record;
// everything under a group whose name is sensitive is masked. A record with
// nothing to redact is passed on as it came, without allocating. A nil p
// means [Default].
func NewHandler(next slog.Handler, p *Policy) slog.Handler {
	return &handler{next: next, p: p.self()}
}

type handler struct {
	next    slog.Handler
	p       *Policy
	maskAll bool // inside a group with a sensitive name
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	// Check first, without allocating or counting; rebuild only when needed.
	dirty := h.p.dirtyString(r.Message) || h.maskAll && r.NumAttrs() > 0
	if !dirty {
		r.Attrs(func(a slog.Attr) bool {
			dirty = h.p.attrDirty(a)
			return !dirty
		})
	}
	if !dirty {
		return h.next.Handle(ctx, r)
	}
	msg, _ := h.p.redactString(r.Message)
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		ra, _ := h.attr(a)
		out.AddAttrs(ra)
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *handler) attr(a slog.Attr) (slog.Attr, bool) {
	if h.maskAll {
		text, ok := valueText(a.Value)
		return slog.String(a.Key, h.p.keyMask(text, ok)), true
	}
	return h.p.attr(a, 0)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i], _ = h.attr(a)
	}
	return &handler{next: h.next.WithAttrs(out), p: h.p, maskAll: h.maskAll}
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &handler{next: h.next.WithGroup(name), p: h.p, maskAll: h.maskAll || h.p.keys.match(name)}
}

// ReplaceAttr redacts one attribute, for slog.HandlerOptions.ReplaceAttr of
// the standard handlers: pass p.ReplaceAttr. The message is redacted as
// [Policy.String], the time, level and source are left alone, and attributes
// are redacted as [Policy.Attr], masked whole when any enclosing group has a
// sensitive name. (Handlers call ReplaceAttr for every record and for the
// leaves of groups, so [NewHandler], which redacts With attributes once, is
// the cheaper choice.)
func (p *Policy) ReplaceAttr(groups []string, a slog.Attr) slog.Attr {
	p = p.self()
	if len(groups) == 0 {
		switch a.Key {
		case slog.TimeKey, slog.LevelKey, slog.SourceKey:
			return a
		case slog.MessageKey:
			if a.Value.Kind() == slog.KindString {
				if s, changed := p.redactString(a.Value.String()); changed {
					return slog.String(a.Key, s)
				}
				return a
			}
		}
	}
	for _, g := range groups {
		if p.keys.match(g) {
			text, ok := valueText(a.Value)
			return slog.String(a.Key, p.keyMask(text, ok))
		}
	}
	out, _ := p.attr(a, 0)
	return out
}
