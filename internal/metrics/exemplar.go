package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Exemplar labels are a trace_id (32 hex) and a span_id (16 hex), nothing
// else: their length is fixed, so they can never reach client_golang's
// ExemplarMaxRunes, whose excess would make ObserveWithExemplar panic.
const exemplarRunes = len("trace_id") + 2*len(trace.TraceID{}) + len("span_id") + 2*len(trace.SpanID{})

// A compile-time proof of the above: a negative array length does not build.
var _ [prometheus.ExemplarMaxRunes - exemplarRunes]struct{}

// exemplarLabelsPool avoids a map per exemplar; client_golang copies the
// labels out of it.
var exemplarLabelsPool = sync.Pool{New: func() any { return prometheus.Labels{"trace_id": "", "span_id": ""} }}

// epoch makes exemplar timestamps monotonic: a wall clock stepping back must
// not stop exemplars.
var epoch = time.Now()

// exemplarGate admits at most one exemplar per bucket per interval for one
// series. Prometheus keeps one exemplar per bucket per scrape, so building
// more (client_golang allocates for each) would be wasted.
type exemplarGate struct {
	bounds   []float64
	interval int64
	last     []atomic.Int64 // per bucket (+Inf last): monotonic ns of the last exemplar
}

func newExemplarGate(bounds []float64, interval time.Duration) exemplarGate {
	return exemplarGate{bounds: bounds, interval: int64(interval), last: make([]atomic.Int64, len(bounds)+1)}
}

func (g *exemplarGate) admit(v float64) bool {
	i := 0
	for i < len(g.bounds) && v > g.bounds[i] {
		i++
	}
	now := int64(time.Since(epoch)) + g.interval // +interval: the first one is always admitted
	last := g.last[i].Load()
	return now-last >= g.interval && g.last[i].CompareAndSwap(last, now)
}

// observeDuration records v seconds into o, with sc as the exemplar when it
// may be one (sampled, or as SetExemplarFilter says) and the gate admits it.
func observeDuration(o prometheus.Observer, g *exemplarGate, v float64, sc trace.SpanContext) {
	if exemplarAllowed(sc) && g.admit(v) {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			l := exemplarLabelsPool.Get().(prometheus.Labels)
			l["trace_id"] = sc.TraceID().String()
			l["span_id"] = sc.SpanID().String()
			eo.ObserveWithExemplar(v, l)
			exemplarLabelsPool.Put(l)
			return
		}
	}
	o.Observe(v)
}
