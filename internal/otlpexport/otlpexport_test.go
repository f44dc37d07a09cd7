package otlpexport

import (
	"context"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Every row of the tables makes its exporter, for both protocols, without
// touching the network; HTTP ones are wrapped to close their transport.
func TestEverySignalAndProtocolBuilds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, proto := range []string{"grpc", "http/protobuf"} {
		c := Config{Protocol: proto, Endpoint: "127.0.0.1:1", Insecure: true, Compression: "gzip", Headers: map[string]string{"a": "b"}}
		type shutdowner interface{ Shutdown(context.Context) error }
		made := map[string]func() (shutdowner, error){
			"traces":  func() (shutdowner, error) { return Traces(ctx, c) },
			"metrics": func() (shutdowner, error) { return Metrics(ctx, c) },
			"logs":    func() (shutdowner, error) { return Logs(ctx, c) },
		}
		for name, make := range made {
			e, err := make()
			if err != nil {
				t.Fatalf("%s over %s: %v", name, proto, err)
			}
			var wrapped bool
			switch e.(type) {
			case spanExporter, metricExporter, logExporter:
				wrapped = true
			}
			if wrapped != (proto == "http/protobuf") {
				t.Errorf("%s over %s: %T; only HTTP exporters close their transport on Shutdown", name, proto, e)
			}
			if err := e.Shutdown(ctx); err != nil {
				t.Errorf("%s over %s: Shutdown: %v", name, proto, err)
			}
		}
	}
}

// A constructor whose exporter is not the signal's interface is an error
// when the exporter is made, not a panic.
func TestAsMismatchIsAnError(t *testing.T) {
	newX := func(context.Context, ...int) (string, error) { return "not an exporter", nil }
	e, err := as[sdktrace.SpanExporter](newX)(context.Background())
	if err == nil || e != nil || !strings.Contains(err.Error(), "string is not") {
		t.Fatalf("got %v, %v; want an error naming the type", e, err)
	}
}
