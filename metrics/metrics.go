// Package metrics owns observe's Prometheus registry and the RED instruments
// the middleware records into: names and labels follow observe's contract
// (Prometheus spelling of the OpenTelemetry semantic conventions), every label
// is bounded, and duration histograms carry trace exemplars.
//
// The hot path is a lookup of a cached series and an atomic add; label values
// are resolved once per series.
package metrics

import (
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultDurationBuckets are the OpenTelemetry semantic-convention bucket
// boundaries (seconds) for http.server.request.duration and friends.
var DefaultDurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// DefaultSeriesLimit is the per-metric series cap.
const DefaultSeriesLimit = 1000

// Other is the label value recorded for anything outside the bounded set.
const Other = "_OTHER"

// Config is what New needs. Zero values are sane defaults.
type Config struct {
	// DurationBuckets overrides DefaultDurationBuckets.
	DurationBuckets []float64
	// SeriesLimit caps the label combinations per metric (default 1000).
	SeriesLimit int
	// ConstLabels are added to every observe metric (rarely needed: prefer
	// target_info joins).
	ConstLabels prometheus.Labels
	// NativeHistograms adds a native (sparse) histogram to every duration
	// histogram, alongside the classic buckets.
	NativeHistograms bool
	// DisableRuntimeCollectors leaves out the Go runtime and process collectors.
	DisableRuntimeCollectors bool
}

// Metrics owns a registry and observe's instruments on it.
type Metrics struct {
	reg      *prometheus.Registry
	overflow *prometheus.CounterVec
	cfg      Config

	HTTPServer *HTTPServer
	HTTPClient *HTTPClient
	RPCServer  *RPC
	RPCClient  *RPC
}

// New builds a registry with the Go runtime and process collectors and
// observe's RED instruments.
func New(cfg Config) (*Metrics, error) {
	if len(cfg.DurationBuckets) == 0 {
		cfg.DurationBuckets = DefaultDurationBuckets
	}
	if cfg.SeriesLimit <= 0 {
		cfg.SeriesLimit = DefaultSeriesLimit
	}
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg, cfg: cfg}
	if !cfg.DisableRuntimeCollectors {
		if err := reg.Register(collectors.NewGoCollector()); err != nil {
			return nil, err
		}
		if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return nil, err
		}
	}
	m.overflow = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "observe_metric_overflow_total",
		Help:        "Observations recorded with _OTHER label values because the metric reached its series limit.",
		ConstLabels: cfg.ConstLabels,
	}, []string{"metric"})
	if err := reg.Register(m.overflow); err != nil {
		return nil, err
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
	return m, nil
}

// Registry returns the registry; register your own collectors on it and they
// appear on the admin /metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry: Prometheus text, or OpenMetrics (with
// exemplars) when the scraper's Accept header asks for it.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          m.reg,
	})
}

func (m *Metrics) histogramOpts(name, help string) prometheus.HistogramOpts {
	o := prometheus.HistogramOpts{
		Name:        name,
		Help:        help,
		Buckets:     m.cfg.DurationBuckets,
		ConstLabels: m.cfg.ConstLabels,
	}
	if m.cfg.NativeHistograms {
		o.NativeHistogramBucketFactor = 1.1
		o.NativeHistogramMaxBucketNumber = 160
		o.NativeHistogramMinResetDuration = 0
	}
	return o
}

var current atomic.Pointer[Metrics]

// SetCurrent makes m the instruments that middleware in this process records
// into (nil: none). observe.Init calls it.
func SetCurrent(m *Metrics) { current.Store(m) }

// Current returns the Metrics set by SetCurrent, or nil.
func Current() *Metrics { return current.Load() }

// Standard HTTP methods; anything else is recorded as _OTHER.
var standardMethods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

// MethodLabel returns the bounded label value for an HTTP method: the method
// itself when it is one of the standard ones (case-sensitive, as HTTP says),
// else _OTHER.
func MethodLabel(method string) string {
	switch method {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH":
		return method
	}
	return Other
}

func methodIndex(method string) int {
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
	return 9
}

var statusStrings = func() [600]string {
	var s [600]string
	for i := 100; i < 600; i++ {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

// StatusLabel returns the bounded label value of an HTTP status code: the
// number for 100–599, else _OTHER.
func StatusLabel(code int) string {
	if code >= 100 && code < 600 {
		return statusStrings[code]
	}
	return Other
}
