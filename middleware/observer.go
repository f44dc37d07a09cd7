package middleware

import (
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/internal/metrics"
	"github.com/observekit/observe/internal/tracing"
	"github.com/observekit/observe/internal/wiring"
)

// Instruments is what WithObserver takes: the *observe.Observer that Init
// returned, which is the only implementation (the interface's method is
// unexported, so the middleware can reach the Observer's tracer provider and
// RED metrics without either being public API).
type Instruments interface{ instance.Source }

// WithObserver records requests with obs's instruments, typically the
// *observe.Observer that Init returned. Without it, the middleware uses
// those of the latest observe.Init, looked up per request (so a middleware
// built before Init, or living across a Shutdown and a new Init, follows
// along); a nil obs means that default too. Use it when one process has more than one Observer (tests, or a
// library embedding its own): each middleware then reports to its own.
// Access log lines and per-request debug go through the process's logger
// (slog.Default and logging.Named) either way.
func WithObserver(obs Instruments) Option {
	return func(o *options) {
		o.obs = nil
		if obs != nil {
			o.obs = instance.Of(obs)
		}
	}
}

// instruments returns the tracer provider and metrics to record with: the
// WithObserver ones, else the current observe instance's.
func (o *options) instruments() (*tracing.Provider, *metrics.Metrics) {
	if o.obs != nil {
		return o.obs.Tracing, o.obs.Metrics
	}
	tp, _ := wiring.Tracing.Load().(*tracing.Provider)
	m, _ := wiring.Metrics.Load().(*metrics.Metrics)
	return tp, m
}
