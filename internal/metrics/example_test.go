package metrics_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/observekit/observe/internal/metrics"
	"go.opentelemetry.io/otel/trace"
)

// observe.Init builds the Metrics and the middleware records into it; this
// is the same by hand: a registry with bounded RED instruments, served on
// /metrics.
func ExampleNew() {
	m, err := metrics.New(metrics.Config{SeriesLimit: 2, DisableRuntimeCollectors: true})
	if err != nil {
		panic(err)
	}
	for _, route := range []string{"/users/{id}", "/orders", "/a", "/b"} {
		m.HTTPServer.Observe("GET", route, 200, 12*time.Millisecond, trace.SpanContext{})
	}
	m.HTTPServer.Observe("BREW", "/users/{id}", 418, time.Millisecond, trace.SpanContext{})
	fmt.Println(m.HTTPServer.Series(), "series") // 2 under the limit, 2 with an _OTHER route (GET 200, _OTHER 418)

	http.Handle("/metrics", m.Handler())
	// Output: 4 series
}

// A gRPC server knows what it serves; anything else is one _OTHER series,
// whatever a client asks for.
func ExampleRPC_SetKnownMethods() {
	m, _ := metrics.New(metrics.Config{DisableRuntimeCollectors: true})
	served := map[string]bool{"helloworld.Greeter/SayHello": true}
	m.RPCServer.SetKnownMethods(func(method string) bool { return served[method] })

	m.RPCServer.Observe("/helloworld.Greeter/SayHello", 0, time.Millisecond, trace.SpanContext{})
	for i := range 100 {
		m.RPCServer.Observe(fmt.Sprintf("/scan.S%d/M", i), 12, time.Millisecond, trace.SpanContext{})
	}
	fmt.Println(m.RPCServer.Series(), "series")
	// Output: 2 series
}
