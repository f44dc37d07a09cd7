package observe

import (
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/observekit/observe/internal/anomaly"
	"github.com/observekit/observe/internal/redsample"
)

// startAnomaly starts anomaly detection on the RED sampler's snapshots
// (nothing is added to the request path): every OBSERVE_ANOMALY_WINDOW, the
// routes' windows go through the detector.
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
	window := o.cfg.anomaly.window
	every := 1
	if iv := o.red.Interval(); iv > 0 && window > iv {
		every = int(math.Ceil(float64(window) / float64(iv)))
	}
	var tick atomic.Int64
	o.red.OnSample(func(now time.Time, deltas map[redsample.Key]redsample.Delta) {
		if w.ctx.Err() != nil {
			return // stopped
		}
		if tick.Add(1)%int64(every) != 0 {
			return
		}
		ws := make(map[anomaly.Key]anomaly.Window, len(deltas))
		if every == 1 {
			for k, d := range deltas {
				ws[anomaly.Key{Kind: string(k.Kind), Route: k.Route}] = toWindow(d)
			}
		} else {
			for _, k := range o.red.Keys() {
				ws[anomaly.Key{Kind: string(k.Kind), Route: k.Route}] = toWindow(o.red.Window(k, window))
			}
		}
		w.observe(now, ws)
	})
}

func toWindow(d redsample.Delta) anomaly.Window {
	return anomaly.Window{Start: d.Start, End: d.End, Count: d.Count, Errors: d.Errors, P95: d.Quantile(0.95)}
}
