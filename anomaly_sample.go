package observe

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/observekit/observe/internal/anomaly"
	"github.com/observekit/observe/internal/redsample"
)

// startAnomaly starts anomaly detection on the RED sampler's snapshots
// (nothing is added to the request path).
func (o *Observer) startAnomaly() {
	if o.cfg.anomaly.off || o.red == nil || o.metrics == nil {
		return
	}
	w := newAnomalyWatch(o)
	if err := o.metrics.Registry().Register(w); err != nil {
		w.log.Warn("anomaly detection off: its metrics could not be registered", slog.String("error", err.Error()))
		return
	}
	o.anomaly = w
	w.attach(o.red, o.cfg.anomaly.window)
}

// attach feeds the watch from red: every window (rounded up to whole
// sampler intervals), each route's last intervals merged into one window.
func (w *anomalyWatch) attach(red *redsample.Sampler, window time.Duration) {
	every := 1
	if iv := red.Interval(); iv > 0 && window > iv {
		every = int((window + iv - 1) / iv)
	}
	var tick atomic.Int64
	red.OnSample(func(now time.Time, deltas map[redsample.Key]redsample.Delta) {
		if w.ctx.Err() != nil {
			return // stopped
		}
		if tick.Add(1)%int64(every) != 0 {
			return
		}
		ws := make(map[anomaly.Key]anomaly.Window, len(deltas))
		for k, d := range deltas {
			if every > 1 {
				// The last `every` intervals, this one included: counted,
				// not timed, so that a ticker's jitter never merges one
				// interval into two windows.
				h := red.History(k)
				h = h[max(0, len(h)-every):]
				d = redsample.Merge(h...)
			}
			ws[anomaly.Key{Kind: string(k.Kind), Route: k.Route}] = toWindow(d)
		}
		w.observe(now, ws)
	})
}

func toWindow(d redsample.Delta) anomaly.Window {
	return anomaly.Window{Start: d.Start, End: d.End, Count: d.Count, Errors: d.Errors, P95: d.Quantile(0.95)}
}
