// Package profiling holds the names that link observe's profiles to its
// traces: the pprof labels on a request's CPU samples and the span attribute
// that points at them (the names Grafana's "span profiles" read).
//
// observe.Init starts continuous profiling when PYROSCOPE_SERVER_ADDRESS is
// set and serves pprof on the admin endpoints either way; the implementation
// lives in an internal package.
package profiling

import "go.opentelemetry.io/otel/attribute"

// pprof labels a sampled local root span puts on its goroutine's samples,
// and the span attribute naming the span's profile.
const (
	LabelSpanName      = "span_name"
	LabelEndpoint      = "endpoint"
	ProfileIDAttribute = attribute.Key("pyroscope.profile.id")
)
