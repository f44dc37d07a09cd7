package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Metric names of the HTTP instruments.
const (
	HTTPServerDuration     = "http_server_request_duration_seconds"
	httpServerActive       = "http_server_active_requests"
	httpServerRequestSize  = "http_server_request_body_size_bytes"
	httpServerResponseSize = "http_server_response_body_size_bytes"
	httpClientDuration     = "http_client_request_duration_seconds"
	httpClientRequestSize  = "http_client_request_body_size_bytes"
	httpClientResponseSize = "http_client_response_body_size_bytes"
)

// otherSentinel marks an _OTHER free-form value (route, server address, RPC
// method) in cache keys; it cannot collide with a real value, which would
// have to contain a NUL byte.
const otherSentinel = "\x00" + Other

func labelOrOther(s string) string {
	if s == otherSentinel {
		return Other
	}
	return s
}

// cleanFree returns s, or otherSentinel when s cannot be a label value.
func cleanFree(s string) string {
	if s == otherSentinel || freeLabel(s) == Other {
		return otherSentinel
	}
	return s
}

// httpSeries is one label combination of an HTTP server or client: its
// duration histogram (with the exemplar gate), resolved once, and its two
// body size histograms, resolved when a size is first recorded (so callers
// that never know sizes add no empty series).
type httpSeries struct {
	duration prometheus.Observer
	gate     exemplarGate
	sizes    atomic.Pointer[httpSizes]
	labels   []string
	vecs     *httpVecs
}

type httpSizes struct{ req, resp prometheus.Observer }

func (s *httpSeries) observe(d time.Duration, reqBytes, respBytes int64, sc trace.SpanContext) {
	observeDuration(s.duration, &s.gate, d.Seconds(), sc)
	if reqBytes < 0 && respBytes < 0 {
		return
	}
	z := s.sizes.Load()
	if z == nil {
		z = s.vecs.sizes(s.labels)
		if !s.sizes.CompareAndSwap(nil, z) {
			z = s.sizes.Load()
		}
	}
	if reqBytes >= 0 {
		z.req.Observe(float64(reqBytes))
	}
	if respBytes >= 0 {
		z.resp.Observe(float64(respBytes))
	}
}

// httpVecs are the three histogram vectors behind httpSeries.
type httpVecs struct {
	duration, reqSize, respSize *prometheus.HistogramVec
	discard                     httpSizes // should client_golang refuse label values
	discardDuration             prometheus.Observer
	buckets                     []float64
	interval                    time.Duration
}

func newHTTPVecs(m *Metrics, labels []string, durName, durHelp, reqName, reqHelp, respName, respHelp string) (*httpVecs, error) {
	v := &httpVecs{buckets: m.cfg.DurationBuckets, interval: m.cfg.ExemplarInterval}
	durOpts := m.histogramOpts(durName, durHelp, m.cfg.DurationBuckets)
	reqOpts := m.histogramOpts(reqName, reqHelp, m.cfg.SizeBuckets)
	respOpts := m.histogramOpts(respName, respHelp, m.cfg.SizeBuckets)
	v.duration = prometheus.NewHistogramVec(durOpts, labels)
	v.reqSize = prometheus.NewHistogramVec(reqOpts, labels)
	v.respSize = prometheus.NewHistogramVec(respOpts, labels)
	for _, c := range []prometheus.Collector{v.duration, v.reqSize, v.respSize} {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
	}
	v.discard = httpSizes{req: prometheus.NewHistogram(reqOpts), resp: prometheus.NewHistogram(respOpts)}
	v.discardDuration = prometheus.NewHistogram(durOpts)
	return v, nil
}

func (v *httpVecs) series(labels ...string) *httpSeries {
	d, err := v.duration.GetMetricWithLabelValues(labels...)
	if err != nil {
		d = v.discardDuration
	}
	return &httpSeries{duration: d, gate: newExemplarGate(v.buckets, v.interval), labels: labels, vecs: v}
}

func (v *httpVecs) sizes(labels []string) *httpSizes {
	q, err1 := v.reqSize.GetMetricWithLabelValues(labels...)
	r, err2 := v.respSize.GetMetricWithLabelValues(labels...)
	if err1 != nil || err2 != nil {
		return &v.discard
	}
	return &httpSizes{req: q, resp: r}
}

// HTTPServer holds http_server_request_duration_seconds,
// http_server_active_requests and the server body size histograms.
type HTTPServer struct {
	series *bounded[httpServerKey, httpSeries]
	active [otherMethod + 1]prometheus.Gauge
}

type httpServerKey struct {
	route  string
	status int16
	method uint8
}

func newHTTPServer(m *Metrics) (*HTTPServer, error) {
	vecs, err := newHTTPVecs(m, []string{"http_request_method", "http_route", "http_response_status_code"},
		HTTPServerDuration, "Duration of HTTP server requests.",
		httpServerRequestSize, "Size of HTTP server request bodies (Content-Length, or the bytes the handler read).",
		httpServerResponseSize, "Size of HTTP server response bodies (bytes written by the handler).")
	if err != nil {
		return nil, err
	}
	active := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name:        httpServerActive,
		Help:        "Number of active HTTP server requests.",
		ConstLabels: m.cfg.ConstLabels,
	}, []string{"http_request_method"})
	if err := m.reg.Register(active); err != nil {
		return nil, err
	}
	s := &HTTPServer{}
	s.series = newBounded(m.cfg.SeriesLimit, m.overflow.WithLabelValues(HTTPServerDuration),
		httpServerKey{route: otherSentinel, status: -1, method: otherMethod},
		func(k httpServerKey) httpServerKey { k.route = cleanFree(k.route); return k },
		func(k httpServerKey) *httpSeries {
			return vecs.series(methodName(k.method), labelOrOther(k.route), statusName(k.status))
		})
	for i := range s.active {
		s.active[i] = active.WithLabelValues(methodName(uint8(i)))
	}
	return s, nil
}

// Start marks a request of method as active; call the returned gauge's Dec
// when it ends.
func (s *HTTPServer) Start(method string) prometheus.Gauge {
	g := s.active[methodIndex(method)]
	g.Inc()
	return g
}

// Observe records one finished request without body sizes. See
// ObserveWithSizes.
func (s *HTTPServer) Observe(method, route string, status int, d time.Duration, sc trace.SpanContext) {
	s.ObserveWithSizes(method, route, status, d, -1, -1, sc)
}

// ObserveWithSizes records one finished request. route is the matched route
// template ("" when nothing matched), never a raw path; sc is the request's
// span context: when sampled, the duration carries it as an exemplar.
// reqBytes and respBytes are the body sizes; a negative size is unknown and
// not recorded.
func (s *HTTPServer) ObserveWithSizes(method, route string, status int, d time.Duration, reqBytes, respBytes int64, sc trace.SpanContext) {
	k := httpServerKey{route: route, status: statusKey(status), method: methodIndex(method)}
	se := s.series.get(k)
	if se == nil {
		// Over the series limit: keep method and status (both bounded by
		// construction) so error ratios stay right; the route becomes _OTHER.
		s.series.overflow.Inc()
		k.route = otherSentinel
		se = s.series.reserve(k)
	}
	se.observe(d, reqBytes, respBytes, sc)
}

// Series reports how many series the duration histogram holds; the size
// histograms hold the same.
func (s *HTTPServer) Series() int { return s.series.Len() }
