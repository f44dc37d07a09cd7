// Package metrics holds the names a service owner needs to query or alert
// on observe's RED metrics: the metric names of the contract and the default
// duration buckets (SLO latency thresholds must be one of them).
//
// observe.Init creates the instruments and serves them, with the Go runtime
// collectors and anything recorded through the OpenTelemetry metrics API, on
// the admin /metrics; register collectors of your own with
// Observer.Registerer. The implementation lives in an internal package.
package metrics

// Prometheus names of observe's request metrics (labels in the README).
const (
	HTTPServerDuration       = "http_server_request_duration_seconds"
	HTTPServerActiveRequests = "http_server_active_requests"
	HTTPClientDuration       = "http_client_request_duration_seconds"
	RPCServerDuration        = "rpc_server_call_duration_seconds"
	RPCClientDuration        = "rpc_client_call_duration_seconds"
)

// Other is the label value recorded in place of a value that is unknown,
// outside the accepted set (a non-standard HTTP method) or past a metric's
// series cap.
const Other = "_OTHER"

// DefaultDurationBuckets are the bucket bounds (seconds) of the duration
// histograms unless observe.WithDurationBuckets says otherwise: the
// OpenTelemetry semantic conventions' bounds. Changing this variable
// changes nothing in observe.
var DefaultDurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
