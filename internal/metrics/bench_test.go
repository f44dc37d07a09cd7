package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// The hot path: one finished request recorded, as the middleware does.

func BenchmarkHTTPServerObserve(b *testing.B) {
	m := newMetrics(b, Config{})
	b.ReportAllocs()
	for b.Loop() {
		m.HTTPServer.Observe("GET", "/users/{id}", 200, 3*time.Millisecond, trace.SpanContext{})
	}
}

func BenchmarkHTTPServerObserveWithSizes(b *testing.B) {
	m := newMetrics(b, Config{})
	b.ReportAllocs()
	for b.Loop() {
		m.HTTPServer.ObserveWithSizes("GET", "/users/{id}", 200, 3*time.Millisecond, 0, 512, trace.SpanContext{})
	}
}

// BenchmarkHTTPServerObserveSampled: every request sampled; the exemplar
// gate lets one per bucket per second through.
func BenchmarkHTTPServerObserveSampled(b *testing.B) {
	m := newMetrics(b, Config{})
	b.ReportAllocs()
	for b.Loop() {
		m.HTTPServer.ObserveWithSizes("GET", "/users/{id}", 200, 3*time.Millisecond, 0, 512, sampled)
	}
}

// BenchmarkHTTPServerObserveEveryExemplar is the cost of an exemplar itself
// (client_golang builds one per call): what the gate saves.
func BenchmarkHTTPServerObserveEveryExemplar(b *testing.B) {
	m := newMetrics(b, Config{ExemplarInterval: time.Nanosecond})
	b.ReportAllocs()
	for b.Loop() {
		m.HTTPServer.Observe("GET", "/users/{id}", 200, 3*time.Millisecond, sampled)
	}
}

func BenchmarkHTTPServerObserveNative(b *testing.B) {
	m := newMetrics(b, Config{NativeHistograms: true})
	b.ReportAllocs()
	for b.Loop() {
		m.HTTPServer.Observe("GET", "/users/{id}", 200, 3*time.Millisecond, trace.SpanContext{})
	}
}

// BenchmarkHTTPServerObserveOverflow: a metric past its limit, a new route
// every time (a scan): no lock, no allocation, no new series.
func BenchmarkHTTPServerObserveOverflow(b *testing.B) {
	m := newMetrics(b, Config{SeriesLimit: 10})
	routes := make([]string, 1024)
	for i := range routes {
		routes[i] = fmt.Sprintf("/r/%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.HTTPServer.Observe("GET", routes[i&1023], 200, 3*time.Millisecond, trace.SpanContext{})
		i++
	}
}

func BenchmarkHTTPServerObserveParallel(b *testing.B) {
	m := newMetrics(b, Config{})
	routes := []string{"/users/{id}", "/orders", "/orders/{id}", "/health"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.HTTPServer.Observe("GET", routes[i&3], 200, 3*time.Millisecond, trace.SpanContext{})
			i++
		}
	})
}

func BenchmarkRPCObserve(b *testing.B) {
	m := newMetrics(b, Config{})
	b.ReportAllocs()
	for b.Loop() {
		m.RPCServer.Observe("/helloworld.Greeter/SayHello", 0, 3*time.Millisecond, trace.SpanContext{})
	}
}

func BenchmarkHTTPClientObserve(b *testing.B) {
	m := newMetrics(b, Config{})
	b.ReportAllocs()
	for b.Loop() {
		m.HTTPClient.ObserveWithSizes("GET", "api.example.com", 200, 3*time.Millisecond, -1, 512, trace.SpanContext{})
	}
}

// BenchmarkClientGolangHistogramVec is the plain client_golang way, label
// values resolved per call: the reference the cache is measured against.
func BenchmarkClientGolangHistogramVec(b *testing.B) {
	reg := prometheus.NewRegistry()
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "d", Buckets: DefaultDurationBuckets},
		[]string{"http_request_method", "http_route", "http_response_status_code"})
	reg.MustRegister(vec)
	b.ReportAllocs()
	for b.Loop() {
		vec.WithLabelValues("GET", "/users/{id}", "200").Observe(0.003)
	}
}
