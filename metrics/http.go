package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// HTTPServer holds http_server_request_duration_seconds and
// http_server_active_requests.
type HTTPServer struct {
	duration *bounded[httpServerKey]
	active   [10]prometheus.Gauge // by methodIndex
}

type httpServerKey struct {
	route  string
	status int16
	method uint8
}

func newHTTPServer(m *Metrics) (*HTTPServer, error) {
	dur := prometheus.NewHistogramVec(m.histogramOpts(
		"http_server_request_duration_seconds",
		"Duration of HTTP server requests.",
	), []string{"http_request_method", "http_route", "http_response_status_code"})
	active := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name:        "http_server_active_requests",
		Help:        "Number of active HTTP server requests.",
		ConstLabels: m.cfg.ConstLabels,
	}, []string{"http_request_method"})
	for _, c := range []prometheus.Collector{dur, active} {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
	}
	s := &HTTPServer{
		duration: newBounded[httpServerKey](dur, m.cfg.SeriesLimit, m.overflow.WithLabelValues("http_server_request_duration_seconds")),
	}
	for i, meth := range standardMethods {
		s.active[i] = active.WithLabelValues(meth)
	}
	s.active[9] = active.WithLabelValues(Other)
	return s, nil
}

// Start marks a request of method as active; call the returned gauge's Dec
// when it ends.
func (s *HTTPServer) Start(method string) prometheus.Gauge {
	g := s.active[methodIndex(method)]
	g.Inc()
	return g
}

// Observe records one finished request. route is the matched route template
// ("" when nothing matched); sc is the request's span context: when sampled,
// the observation carries it as an exemplar.
func (s *HTTPServer) Observe(method, route string, status int, d time.Duration, sc trace.SpanContext) {
	mi := methodIndex(method)
	st := int16(-1)
	if status >= 100 && status < 600 {
		st = int16(status)
	}
	k := httpServerKey{route: route, status: st, method: uint8(mi)}
	o := s.duration.get(k, httpServerLabels, false)
	if o == nil {
		// Over the series limit: keep method and status (both bounded by
		// construction) so error ratios stay right; the route becomes _OTHER.
		s.duration.overflow.Inc()
		k.route = otherSentinel
		o = s.duration.get(k, httpServerLabels, true)
	}
	observe(o, d.Seconds(), sc)
}

// otherSentinel marks the overflow series' route in cache keys; it cannot
// collide with a real route because those start with "/" or are empty.
const otherSentinel = "\x00" + Other

func labelOrOther(s string) string {
	if s == otherSentinel {
		return Other
	}
	return s
}

func httpServerLabels(k httpServerKey) []string {
	meth := Other
	if k.method < 9 {
		meth = standardMethods[k.method]
	}
	return []string{meth, labelOrOther(k.route), StatusLabel(int(k.status))}
}

// exemplarLabelsPool avoids a map allocation per sampled observation;
// client_golang copies the labels into the exemplar.
var exemplarLabelsPool = sync.Pool{New: func() any { return prometheus.Labels{"trace_id": "", "span_id": ""} }}

func observe(o prometheus.Observer, v float64, sc trace.SpanContext) {
	if sc.IsSampled() {
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

// bounded caches the observer of each label combination and caps how many
// there can be: past the limit, get returns nil for a new combination and
// counts it in observe_metric_overflow_total; the caller then asks for its
// overflow series with force.
type bounded[K comparable] struct {
	vec      *prometheus.HistogramVec
	series   sync.Map // K -> prometheus.Observer
	n        atomic.Int64
	limit    int64
	mu       sync.Mutex
	overflow prometheus.Counter
}

func newBounded[K comparable](vec *prometheus.HistogramVec, limit int, overflow prometheus.Counter) *bounded[K] {
	return &bounded[K]{vec: vec, limit: int64(limit), overflow: overflow}
}

// Len reports how many series are cached (overflow series included).
func (b *bounded[K]) Len() int { return int(b.n.Load()) }

func (b *bounded[K]) get(k K, labels func(K) []string, force bool) prometheus.Observer {
	if o, ok := b.series.Load(k); ok {
		return o.(prometheus.Observer)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if o, ok := b.series.Load(k); ok {
		return o.(prometheus.Observer)
	}
	if !force && b.n.Load() >= b.limit {
		return nil
	}
	o := b.vec.WithLabelValues(labels(k)...)
	b.series.Store(k, o)
	b.n.Add(1)
	return o
}
