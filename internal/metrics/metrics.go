// Package metrics owns observe's Prometheus registry and the RED instruments
// the middleware records into: names and labels follow observe's contract
// (Prometheus spelling of the OpenTelemetry semantic conventions), every label
// is bounded, and duration histograms carry trace exemplars.
//
// The hot path is a lookup of a cached series and atomic adds; label values
// are resolved once per series.
//
// Bounds: a label value comes from a fixed set (methods, status codes, gRPC
// codes) or from a per-metric cache of at most Config.SeriesLimit
// combinations. Past the limit, a new combination is recorded with _OTHER in
// its unbounded label (route, server_address, rpc_method) and counted in
// observe_metric_overflow_total{metric}; past a further small reserve of
// overflow series every label becomes _OTHER. No request input can make a
// metric hold more than SeriesLimit+overflowReserve+1 series.
package metrics

import (
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/observekit/observe/internal/wiring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/sdk/resource"
)

// DefaultDurationBuckets are the OpenTelemetry semantic-convention bucket
// boundaries (seconds) for http.server.request.duration and friends.
var DefaultDurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// defaultSizeBuckets are the bucket boundaries (bytes) of the body size
// histograms: powers of four from 64 B to 64 MiB. The semantic conventions
// give no advice for sizes.
var defaultSizeBuckets = []float64{0, 64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20}

// defaultSeriesLimit is the per-metric series cap.
const defaultSeriesLimit = 1000

// overflowReserve is how many extra series a metric may create past its
// series limit to keep the bounded labels (method, status code) of the
// overflowed observations; past it, every label is _OTHER.
const overflowReserve = 64

// defaultExemplarInterval is how often, at most, a histogram bucket of one
// series takes a new exemplar.
const defaultExemplarInterval = time.Second

// Other is the label value recorded for anything outside the bounded set.
const Other = "_OTHER"

// maxLabelLen bounds the length of a free-form label value (route, server
// address, RPC method); a longer one is recorded as _OTHER.
const maxLabelLen = 256

// Config is what New needs. Zero values are sane defaults.
type Config struct {
	// DurationBuckets overrides DefaultDurationBuckets (seconds).
	DurationBuckets []float64
	// SizeBuckets overrides defaultSizeBuckets (bytes).
	SizeBuckets []float64
	// SeriesLimit caps the label combinations per metric (default 1000).
	SeriesLimit int
	// ConstLabels are added to every observe metric (rarely needed: prefer
	// target_info joins).
	ConstLabels prometheus.Labels
	// NativeHistograms adds a native (sparse) histogram to every histogram,
	// alongside the classic buckets. Prometheus scrapes it with
	// --enable-feature=native-histograms (and then, before Prometheus 2.45 or
	// without scrape_classic_histograms, ignores the classic buckets).
	NativeHistograms bool
	// ExemplarInterval is how often, at most, one bucket of one series takes
	// a new exemplar (default defaultExemplarInterval). Prometheus keeps one
	// exemplar per bucket per scrape, so more would be wasted work.
	ExemplarInterval time.Duration
	// DisableRuntimeCollectors leaves out the Go runtime and process collectors.
	DisableRuntimeCollectors bool
	// Resource, when set, is exposed as target_info{...} 1 so PromQL can join
	// on service_version, deployment_environment and the rest.
	Resource *resource.Resource
}

// Metrics owns a registry and observe's instruments on it.
type Metrics struct {
	reg      *prometheus.Registry
	otel     *otelGatherer // the OTel API's metrics (see NewMeterProvider)
	gatherer prometheus.Gatherers
	overflow *prometheus.CounterVec
	self     *selfCollector
	cfg      Config

	HTTPServer *HTTPServer
	HTTPClient *HTTPClient
	RPCServer  *RPC
	RPCClient  *RPC
}

// New builds a registry with the Go runtime, process and build-info
// collectors, target_info, observe's self-telemetry and its RED instruments.
func New(cfg Config) (*Metrics, error) {
	if len(cfg.DurationBuckets) == 0 {
		cfg.DurationBuckets = DefaultDurationBuckets
	}
	if len(cfg.SizeBuckets) == 0 {
		cfg.SizeBuckets = defaultSizeBuckets
	}
	for _, b := range [][]float64{cfg.DurationBuckets, cfg.SizeBuckets} {
		for i := 1; i < len(b); i++ {
			if !(b[i] > b[i-1]) {
				return nil, errors.New("metrics: histogram buckets must be in strictly increasing order")
			}
		}
	}
	if cfg.SeriesLimit <= 0 {
		cfg.SeriesLimit = defaultSeriesLimit
	}
	if cfg.ExemplarInterval <= 0 {
		cfg.ExemplarInterval = defaultExemplarInterval
	}
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg, otel: &otelGatherer{}, cfg: cfg}
	m.gatherer = prometheus.Gatherers{m.reg, m.otel}
	var cs []prometheus.Collector
	if !cfg.DisableRuntimeCollectors {
		cs = append(cs,
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
	}
	cs = append(cs, collectors.NewBuildInfoCollector())
	if cfg.Resource != nil {
		ti, err := newTargetInfo(cfg.Resource)
		if err != nil {
			return nil, err
		}
		cs = append(cs, ti)
	}
	m.overflow = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "observe_metric_overflow_total",
		Help:        "Observations recorded with _OTHER label values because the metric reached its series limit.",
		ConstLabels: cfg.ConstLabels,
	}, []string{"metric"})
	cs = append(cs, m.overflow)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	var err error
	if m.HTTPServer, err = newHTTPServer(m); err != nil {
		return nil, err
	}
	if m.HTTPClient, err = newHTTPClient(m); err != nil {
		return nil, err
	}
	if m.RPCServer, err = newRPC(m, "rpc_server_call_duration_seconds", "Duration of RPC server calls."); err != nil {
		return nil, err
	}
	if m.RPCClient, err = newRPC(m, "rpc_client_call_duration_seconds", "Duration of RPC client calls."); err != nil {
		return nil, err
	}
	m.self = newSelfCollector(m)
	if err := reg.Register(m.self); err != nil {
		return nil, err
	}
	return m, nil
}

// Registry returns the registry; register your own collectors on it and they
// appear on the admin /metrics (and are pushed over OTLP when that is on).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Gatherer returns what /metrics serves: the registry plus the metrics
// recorded through the OpenTelemetry metrics API.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.gatherer }

// Handler serves the Gatherer: the Prometheus text format by default,
// OpenMetrics (with exemplars) or protobuf (with native histograms) when the
// scraper's Accept header asks for it.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          m.reg,
	})
}

func (m *Metrics) histogramOpts(name, help string, buckets []float64) prometheus.HistogramOpts {
	o := prometheus.HistogramOpts{
		Name:        name,
		Help:        help,
		Buckets:     buckets,
		ConstLabels: m.cfg.ConstLabels,
	}
	if m.cfg.NativeHistograms {
		o.NativeHistogramBucketFactor = 1.1
		o.NativeHistogramMaxBucketNumber = 160
		// Never reset: a reset zeroes the classic buckets too. Past the
		// bucket limit the resolution goes down instead.
		o.NativeHistogramMinResetDuration = 0
	}
	return o
}

// current returns the Metrics observe.Init made current (wiring.Metrics), or
// nil.
func current() *Metrics {
	m, _ := wiring.Metrics.Load().(*Metrics)
	return m
}

// Standard HTTP methods; anything else is recorded as _OTHER.
var standardMethods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

const otherMethod = uint8(len(standardMethods)) // methodIndex of _OTHER

// MethodLabel returns the bounded label value for an HTTP method: the method
// itself when it is one of the standard ones (case-sensitive, as HTTP says),
// else _OTHER.
func MethodLabel(method string) string {
	if i := methodIndex(method); i < otherMethod {
		return standardMethods[i]
	}
	return Other
}

func methodIndex(method string) uint8 {
	switch method {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "DELETE":
		return 4
	case "CONNECT":
		return 5
	case "OPTIONS":
		return 6
	case "TRACE":
		return 7
	case "PATCH":
		return 8
	}
	return otherMethod
}

func methodName(i uint8) string {
	if i < otherMethod {
		return standardMethods[i]
	}
	return Other
}

var statusStrings = func() [600]string {
	var s [600]string
	for i := 100; i < 600; i++ {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

// StatusLabel returns the bounded label value of an HTTP status code: the
// number for 100–599, "" for 0 (no response: the request failed or was
// canceled before one came), else _OTHER.
func StatusLabel(code int) string {
	switch {
	case code >= 100 && code < 600:
		return statusStrings[code]
	case code == 0:
		return ""
	}
	return Other
}

// statusKey packs an HTTP status into a cache key: 100–599 as is, 0 for no
// response, -1 for anything else.
func statusKey(code int) int16 {
	if code >= 100 && code < 600 || code == 0 {
		return int16(code)
	}
	return -1
}

func statusName(k int16) string { return StatusLabel(int(k)) }

// freeLabel bounds a free-form label value: too long or not UTF-8 (which
// client_golang would refuse) becomes _OTHER.
func freeLabel(s string) string {
	if len(s) > maxLabelLen || !utf8.ValidString(s) {
		return Other
	}
	return s
}
