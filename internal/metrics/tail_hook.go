package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// exemplarFilter, when set, decides which span contexts may be exemplars.
var exemplarFilter atomic.Pointer[func(trace.SpanContext) bool]

// SetExemplarFilter makes keep decide whether an observation's span context
// may be attached as an exemplar; nil restores the default, sc.IsSampled().
// With local tail sampling, observe.Init sets tracing.Kept, so exemplars
// point only at traces that are kept: sampled from the start, or kept when
// their local root ended (the middleware records after ending its span).
// keep must be safe for concurrent use and quick.
func SetExemplarFilter(keep func(trace.SpanContext) bool) {
	if keep == nil {
		exemplarFilter.Store(nil)
		return
	}
	exemplarFilter.Store(&keep)
}

// exemplarAllowed reports whether sc may be an exemplar.
func exemplarAllowed(sc trace.SpanContext) bool {
	if f := exemplarFilter.Load(); f != nil {
		return sc.IsValid() && (*f)(sc)
	}
	return sc.IsSampled()
}

// TailSampling is what RegisterTailSampling reads; tracing.TailSampler
// implements it.
type TailSampling interface {
	Evicted() uint64                                  // spans evicted at the buffer's caps
	Buffered() int                                    // spans buffered now
	Decisions() (keptError, keptSlow, dropped uint64) // tentative traces, by outcome
}

// RegisterTailSampling exports local tail sampling's own health on m's
// registry: observe_tail_sampling_evicted_spans_total,
// observe_tail_sampling_buffered_spans and
// observe_tail_sampling_traces_total{decision="kept_error"|"kept_slow"|"dropped"}
// (baseline and upstream-sampled traces are kept from their first span and
// not counted there).
func (m *Metrics) RegisterTailSampling(t TailSampling) error {
	cl := m.cfg.ConstLabels
	return m.reg.Register(&tailCollector{
		t:        t,
		evicted:  prometheus.NewDesc("observe_tail_sampling_evicted_spans_total", "Spans of tentative traces evicted, with their whole trace, because the tail sampling buffer reached a cap.", nil, cl),
		buffered: prometheus.NewDesc("observe_tail_sampling_buffered_spans", "Spans of tentative traces buffered until their local root ends.", nil, cl),
		traces:   prometheus.NewDesc("observe_tail_sampling_traces_total", "Tentative local traces decided when their local root ended, by decision.", []string{"decision"}, cl),
	})
}

type tailCollector struct {
	t                         TailSampling
	evicted, buffered, traces *prometheus.Desc
}

func (c *tailCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.evicted
	ch <- c.buffered
	ch <- c.traces
}

func (c *tailCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.evicted, prometheus.CounterValue, float64(c.t.Evicted()))
	ch <- prometheus.MustNewConstMetric(c.buffered, prometheus.GaugeValue, float64(c.t.Buffered()))
	e, s, d := c.t.Decisions()
	ch <- prometheus.MustNewConstMetric(c.traces, prometheus.CounterValue, float64(e), "kept_error")
	ch <- prometheus.MustNewConstMetric(c.traces, prometheus.CounterValue, float64(s), "kept_slow")
	ch <- prometheus.MustNewConstMetric(c.traces, prometheus.CounterValue, float64(d), "dropped")
}
