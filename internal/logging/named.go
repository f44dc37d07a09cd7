package logging

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/observekit/observe/internal/wiring"
)

// rootHandler returns the handler named loggers (Named) write through, which
// observe.Init stores in wiring.LogRoot; nil: they use slog.Default's
// handler.
func rootHandler() *Handler {
	h, _ := wiring.LogRoot.Load().(*Handler)
	return h
}

// Named returns a logger whose lines carry "logger":name and whose level is
// the controller's level for name (hierarchical: "db" covers "db.pool").
// It may be created before observe.Init (as a package variable): it writes
// through whatever handler is current when it logs.
func Named(name string) *slog.Logger {
	return slog.New(&namedHandler{name: name})
}

// namedHandler defers to the current root handler, rebuilding its derived
// handler only when the root changes.
type namedHandler struct {
	name  string
	ops   []op // WithAttrs/WithGroup applied after Named, replayed on a new root
	cache atomic.Pointer[namedCache]
}

type op struct {
	group string
	attrs []slog.Attr
}

type namedCache struct {
	root *Handler
	h    slog.Handler
}

func (n *namedHandler) resolve() slog.Handler {
	r := rootHandler()
	if c := n.cache.Load(); c != nil && c.root == r {
		return c.h
	}
	var h slog.Handler
	if r == nil {
		h = slog.Default().Handler()
		if _, isNamed := h.(*namedHandler); isNamed {
			h = slog.DiscardHandler // never loop through ourselves
		}
		if nr, ok := h.(*Handler); ok {
			h = nr.WithName(n.name)
		}
	} else {
		h = r.WithName(n.name)
	}
	for _, o := range n.ops {
		if o.group != "" {
			h = h.WithGroup(o.group)
		} else {
			h = h.WithAttrs(o.attrs)
		}
	}
	n.cache.Store(&namedCache{root: r, h: h})
	return h
}

func (n *namedHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return n.resolve().Enabled(ctx, l)
}

func (n *namedHandler) Handle(ctx context.Context, r slog.Record) error {
	return n.resolve().Handle(ctx, r)
}

func (n *namedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return n
	}
	ops := append(append([]op(nil), n.ops...), op{attrs: as})
	return &namedHandler{name: n.name, ops: ops}
}

func (n *namedHandler) WithGroup(g string) slog.Handler {
	if g == "" {
		return n
	}
	ops := append(append([]op(nil), n.ops...), op{group: g})
	return &namedHandler{name: n.name, ops: ops}
}
