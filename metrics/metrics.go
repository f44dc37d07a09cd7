// Package metrics holds the names a service owner needs to query or alert
// on observe's RED metrics: the metric names of the contract and the default
// duration buckets (SLO latency thresholds must be one of them).
//
// observe.Init creates the instruments and serves them, with the Go runtime
// collectors and anything recorded through the OpenTelemetry metrics API, on
// the admin /metrics; register collectors of your own with
// Observer.Registerer. The implementation lives in an internal package.
package metrics

import (
	"slices"

	imetrics "github.com/observekit/observe/internal/metrics"
)

// Prometheus names of observe's request metrics (labels in the README).
const (
	HTTPServerDuration       = imetrics.HTTPServerDuration
	HTTPServerActiveRequests = "http_server_active_requests"
	HTTPClientDuration       = "http_client_request_duration_seconds"
	RPCServerDuration        = "rpc_server_call_duration_seconds"
	RPCClientDuration        = "rpc_client_call_duration_seconds"
)

// Other is the label value recorded in place of a value that is unknown,
// outside the accepted set (a non-standard HTTP method) or past a metric's
// series cap.
const Other = imetrics.Other

// DefaultDurationBuckets are the bucket bounds (seconds) of the duration
// histograms unless observe.WithDurationBuckets says otherwise: the
// OpenTelemetry semantic conventions' bounds. A copy: changing it changes
// nothing in observe.
var DefaultDurationBuckets = slices.Clone(imetrics.DefaultDurationBuckets)
