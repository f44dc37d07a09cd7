package metrics_test

import (
	"slices"
	"testing"
	"time"

	imetrics "github.com/observekit/observe/internal/metrics"
	"github.com/observekit/observe/metrics"
	"go.opentelemetry.io/otel/trace"
)

// The public names are what the instruments really export: one request of
// each kind, then every name must be among the gathered families.
func TestNamesAreTheExportedFamilies(t *testing.T) {
	m, err := imetrics.New(imetrics.Config{DisableRuntimeCollectors: true})
	if err != nil {
		t.Fatal(err)
	}
	m.HTTPServer.Start("GET").Inc()
	m.HTTPServer.Observe("GET", "/users/{id}", 200, time.Millisecond, trace.SpanContext{})
	m.HTTPClient.ObserveWithSizes("GET", "api.example.com", 200, time.Millisecond, 0, 0, trace.SpanContext{})
	m.RPCServer.Observe("/pkg.Svc/M", 0, time.Millisecond, trace.SpanContext{})
	m.RPCClient.Observe("/pkg.Svc/M", 0, time.Millisecond, trace.SpanContext{})
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	for _, name := range []string{metrics.HTTPServerDuration, metrics.HTTPServerActiveRequests,
		metrics.HTTPClientDuration, metrics.RPCServerDuration, metrics.RPCClientDuration} {
		if !slices.Contains(got, name) {
			t.Errorf("%s is not among the gathered families %v", name, got)
		}
	}
}

// The public values are observe's own: the default buckets and the _OTHER
// value the instruments record.
func TestValuesMatchTheImplementation(t *testing.T) {
	if !slices.Equal(metrics.DefaultDurationBuckets, imetrics.DefaultDurationBuckets) {
		t.Errorf("public buckets %v, observe's %v", metrics.DefaultDurationBuckets, imetrics.DefaultDurationBuckets)
	}
	if metrics.Other != imetrics.Other || metrics.HTTPServerDuration != imetrics.HTTPServerDuration {
		t.Errorf("Other %q / %q, HTTPServerDuration %q / %q", metrics.Other, imetrics.Other, metrics.HTTPServerDuration, imetrics.HTTPServerDuration)
	}
}
