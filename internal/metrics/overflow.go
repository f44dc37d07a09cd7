package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Overflows reports, per metric, how many observations were recorded with
// _OTHER label values because the metric reached its series limit (what
// observe_metric_overflow_total exports); metrics that never overflowed
// are absent. The status page shows it under observe's own health.
func (m *Metrics) Overflows() map[string]uint64 {
	out := map[string]uint64{}
	if m == nil || m.overflow == nil {
		return out
	}
	ch := make(chan prometheus.Metric, 8)
	go func() {
		m.overflow.Collect(ch)
		close(ch)
	}()
	for pm := range ch {
		var d dto.Metric
		if err := pm.Write(&d); err != nil || d.Counter == nil {
			continue
		}
		for _, lp := range d.Label {
			if lp.GetName() == "metric" && d.Counter.GetValue() > 0 {
				out[lp.GetValue()] = uint64(d.Counter.GetValue())
			}
		}
	}
	return out
}
