package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// HTTPClient holds http_client_request_duration_seconds.
type HTTPClient struct {
	duration *bounded[httpClientKey]
}

type httpClientKey struct {
	server string
	status int16
	method uint8
}

func newHTTPClient(m *Metrics) (*HTTPClient, error) {
	vec := prometheus.NewHistogramVec(m.histogramOpts(
		"http_client_request_duration_seconds",
		"Duration of HTTP client requests.",
	), []string{"http_request_method", "server_address", "http_response_status_code"})
	if err := m.reg.Register(vec); err != nil {
		return nil, err
	}
	return &HTTPClient{duration: newBounded[httpClientKey](vec, m.cfg.SeriesLimit, m.overflow.WithLabelValues("http_client_request_duration_seconds"))}, nil
}

func httpClientLabels(k httpClientKey) []string {
	meth := Other
	if k.method < 9 {
		meth = standardMethods[k.method]
	}
	return []string{meth, labelOrOther(k.server), StatusLabel(int(k.status))}
}

// Observe records one finished client request. serverAddress is the host
// (without port) the request went to; status is 0 when no response came
// (recorded as _OTHER).
func (c *HTTPClient) Observe(method, serverAddress string, status int, d time.Duration, sc trace.SpanContext) {
	st := int16(-1)
	if status >= 100 && status < 600 {
		st = int16(status)
	}
	k := httpClientKey{server: serverAddress, status: st, method: uint8(methodIndex(method))}
	o := c.duration.get(k, httpClientLabels, false)
	if o == nil {
		c.duration.overflow.Inc()
		k.server = otherSentinel
		o = c.duration.get(k, httpClientLabels, true)
	}
	observe(o, d.Seconds(), sc)
}

// RPC holds rpc_server_call_duration_seconds or rpc_client_call_duration_seconds.
type RPC struct {
	duration *bounded[rpcKey]
}

type rpcKey struct {
	method string // "pkg.Service/Method", or otherSentinel
	code   uint8  // gRPC status code 0–16, 255 for out of range
}

func newRPC(m *Metrics, name, help string) (*RPC, error) {
	vec := prometheus.NewHistogramVec(m.histogramOpts(name, help),
		[]string{"rpc_system_name", "rpc_method", "rpc_response_status_code"})
	if err := m.reg.Register(vec); err != nil {
		return nil, err
	}
	return &RPC{duration: newBounded[rpcKey](vec, m.cfg.SeriesLimit, m.overflow.WithLabelValues(name))}, nil
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

func rpcLabels(k rpcKey) []string {
	return []string{"grpc", labelOrOther(k.method), GRPCCodeName(uint32(k.code))}
}

// Observe records one finished call. method is "pkg.Service/Method" (without
// the leading slash); pass Other for a method the server does not know.
func (r *RPC) Observe(method string, code uint32, d time.Duration, sc trace.SpanContext) {
	c := uint8(255)
	if code < uint32(len(grpcCodeNames)) {
		c = uint8(code)
	}
	if method == Other {
		method = otherSentinel
	}
	k := rpcKey{method: method, code: c}
	o := r.duration.get(k, rpcLabels, method == otherSentinel)
	if o == nil {
		r.duration.overflow.Inc()
		k.method = otherSentinel
		o = r.duration.get(k, rpcLabels, true)
	}
	observe(o, d.Seconds(), sc)
}
