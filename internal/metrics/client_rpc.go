package metrics

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// HTTPClient holds http_client_request_duration_seconds and the client body
// size histograms.
type HTTPClient struct {
	series *bounded[httpClientKey, httpSeries]
}

type httpClientKey struct {
	server string
	status int16
	method uint8
}

func newHTTPClient(m *Metrics) (*HTTPClient, error) {
	vecs, err := newHTTPVecs(m, []string{"http_request_method", "server_address", "http_response_status_code"},
		httpClientDuration, "Duration of HTTP client requests.",
		httpClientRequestSize, "Size of HTTP client request bodies.",
		httpClientResponseSize, "Size of HTTP client response bodies.")
	if err != nil {
		return nil, err
	}
	c := &HTTPClient{}
	c.series = newBounded(m.cfg.SeriesLimit, m.overflow.WithLabelValues(httpClientDuration),
		httpClientKey{server: otherSentinel, status: -1, method: otherMethod},
		func(k httpClientKey) httpClientKey { k.server = cleanFree(k.server); return k },
		func(k httpClientKey) *httpSeries {
			return vecs.series(methodName(k.method), labelOrOther(k.server), statusName(k.status))
		})
	return c, nil
}

// observe records one finished client request without body sizes. See
// ObserveWithSizes.
func (c *HTTPClient) observe(method, serverAddress string, status int, d time.Duration, sc trace.SpanContext) {
	c.ObserveWithSizes(method, serverAddress, status, d, -1, -1, sc)
}

// ObserveWithSizes records one finished client request. serverAddress is
// the host (without port) the request went to. status is the response's
// status code, or 0 when no response came (canceled, timed out, connection
// failed): recorded as http_response_status_code="", apart from any 5xx a
// server answered. reqBytes and respBytes are the body sizes; a negative
// size is unknown and not recorded.
func (c *HTTPClient) ObserveWithSizes(method, serverAddress string, status int, d time.Duration, reqBytes, respBytes int64, sc trace.SpanContext) {
	k := httpClientKey{server: serverAddress, status: statusKey(status), method: methodIndex(method)}
	se := c.series.get(k)
	if se == nil {
		c.series.overflow.Inc()
		k.server = otherSentinel
		se = c.series.reserve(k)
	}
	se.observe(d, reqBytes, respBytes, sc)
}

// seriesCount reports how many series the duration histogram holds.
func (c *HTTPClient) seriesCount() int { return c.series.Len() }

// RPC holds rpc_server_call_duration_seconds or rpc_client_call_duration_seconds.
type RPC struct {
	series *bounded[rpcKey, rpcSeries]
	known  atomic.Pointer[func(string) bool]
}

type rpcKey struct {
	method string // "pkg.Service/Method", or otherSentinel
	code   uint8  // gRPC status code 0–16, 255 for out of range
}

type rpcSeries struct {
	duration prometheus.Observer
	gate     exemplarGate
}

func newRPC(m *Metrics, name, help string) (*RPC, error) {
	opts := m.histogramOpts(name, help, m.cfg.DurationBuckets)
	vec := prometheus.NewHistogramVec(opts, []string{"rpc_system_name", "rpc_method", "rpc_response_status_code"})
	if err := m.reg.Register(vec); err != nil {
		return nil, err
	}
	discard := &rpcSeries{duration: prometheus.NewHistogram(opts), gate: newExemplarGate(m.cfg.DurationBuckets, m.cfg.ExemplarInterval)}
	r := &RPC{}
	r.series = newBounded(m.cfg.SeriesLimit, m.overflow.WithLabelValues(name),
		rpcKey{method: otherSentinel, code: 255},
		func(k rpcKey) rpcKey {
			if k.method != otherSentinel && !validRPCMethod(k.method) {
				k.method = otherSentinel
			}
			return k
		},
		func(k rpcKey) *rpcSeries {
			o, err := vec.GetMetricWithLabelValues("grpc", labelOrOther(k.method), GRPCCodeName(uint32(k.code)))
			if err != nil {
				return discard
			}
			return &rpcSeries{duration: o, gate: newExemplarGate(m.cfg.DurationBuckets, m.cfg.ExemplarInterval)}
		})
	return r, nil
}

// grpcCodeNames are the canonical gRPC status code names, by code.
var grpcCodeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// GRPCCodeName returns the canonical name of a gRPC status code ("OK",
// "NOT_FOUND", …), or _OTHER.
func GRPCCodeName(code uint32) string {
	if code < uint32(len(grpcCodeNames)) {
		return grpcCodeNames[code]
	}
	return Other
}

// validRPCMethod reports whether m looks like "pkg.Service/Method": ASCII
// letters, digits, '_' and '.', exactly one '/', neither end empty, at most
// maxLabelLen bytes.
func validRPCMethod(m string) bool {
	if len(m) == 0 || len(m) > maxLabelLen {
		return false
	}
	slash := strings.IndexByte(m, '/')
	if slash <= 0 || slash == len(m)-1 || strings.IndexByte(m[slash+1:], '/') >= 0 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '/':
		default:
			return false
		}
	}
	return true
}

// SetKnownMethods bounds rpc_method by what the server serves: a method for
// which known returns false is recorded as _OTHER, without taking a place
// under the series limit. known is asked once per method on a cache miss
// (see GRPCMethods). nil removes the filter.
func (r *RPC) SetKnownMethods(known func(method string) bool) {
	if known == nil {
		r.known.Store(nil)
		return
	}
	r.known.Store(&known)
}

// Observe records one finished call. method is "pkg.Service/Method" (a
// leading slash is removed); pass Other for a method the server does not
// serve. code is the gRPC status code: a panicking handler is INTERNAL (13),
// a call the client canceled CANCELLED (1).
func (r *RPC) Observe(method string, code uint32, d time.Duration, sc trace.SpanContext) {
	c := uint8(255)
	if code < uint32(len(grpcCodeNames)) {
		c = uint8(code)
	}
	if len(method) > 0 && method[0] == '/' {
		method = method[1:]
	}
	if method == Other {
		method = otherSentinel
	}
	k := rpcKey{method: method, code: c}
	se := r.series.lookup(k)
	if se == nil {
		se = r.miss(k)
	}
	observeDuration(se.duration, &se.gate, d.Seconds(), sc)
}

func (r *RPC) miss(k rpcKey) *rpcSeries {
	if k.method != otherSentinel {
		if known := r.known.Load(); known != nil && !(*known)(k.method) {
			// Unknown to the server: _OTHER by design, not an overflow.
			k.method = otherSentinel
			return r.series.reserve(k)
		}
	}
	if k.method == otherSentinel {
		return r.series.reserve(k)
	}
	se := r.series.get(k)
	if se == nil {
		r.series.overflow.Inc()
		k.method = otherSentinel
		se = r.series.reserve(k)
	}
	return se
}

// Series reports how many series the histogram holds.
func (r *RPC) Series() int { return r.series.Len() }
