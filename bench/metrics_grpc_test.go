package bench

import (
	"testing"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/observekit/observe/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
)

// BenchmarkMetricsGRPCUnary compares the RED-metrics part of a unary call:
// observe's gRPC middleware with tracing sampled off (spans not recorded)
// against go-grpc-middleware's Prometheus provider with handling-time
// histograms, server and client both instrumented.
func BenchmarkMetricsGRPCUnary(b *testing.B) {
	runRotated(b, []row{
		{"observe", func(b *testing.B) {
			b.Setenv("OTEL_TRACES_SAMPLER", "always_off")
			traceObserveSampler(b)
			runUnary(b, grpcConn(b, middleware.GRPCServer(), middleware.GRPCClient()))
		}},
		{"observe-no-propagation", func(b *testing.B) {
			// The same without trace context on the wire (OTEL_PROPAGATORS=none
			// in effect): go-grpc-middleware sends none, and a traceparent
			// costs on both ends (inject, header encoding and decoding,
			// extract).
			b.Setenv("OTEL_TRACES_SAMPLER", "always_off")
			traceObserveSampler(b)
			otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
			runUnary(b, grpcConn(b, middleware.GRPCServer(), middleware.GRPCClient()))
		}},
		{"go-grpc-middleware-prometheus", func(b *testing.B) {
			reg := prometheus.NewRegistry()
			srvM := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
			cliM := grpcprom.NewClientMetrics(grpcprom.WithClientHandlingTimeHistogram())
			reg.MustRegister(srvM, cliM)
			runUnary(b, grpcConn(b,
				[]grpc.ServerOption{grpc.ChainUnaryInterceptor(srvM.UnaryServerInterceptor()), grpc.ChainStreamInterceptor(srvM.StreamServerInterceptor())},
				[]grpc.DialOption{grpc.WithChainUnaryInterceptor(cliM.UnaryClientInterceptor()), grpc.WithChainStreamInterceptor(cliM.StreamClientInterceptor())}))
		}},
		{"bare", func(b *testing.B) {
			runUnary(b, grpcConn(b, nil, nil))
		}},
		// grpc-go's own cost of a stats handler on the server (its events and
		// metadata copies), which observe's server pays to see the calls gRPC
		// fails before any interceptor runs: unknown methods, requests that
		// cannot be read, clients gone before dispatch.
		{"noop-stats-handler-server", func(b *testing.B) {
			runUnary(b, grpcConn(b, []grpc.ServerOption{grpc.StatsHandler(noopStats{})}, nil))
		}},
	})
}
