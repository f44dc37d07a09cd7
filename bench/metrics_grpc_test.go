package bench

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/observekit/observe/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// BenchmarkMetricsGRPCUnary compares the RED-metrics part of a unary call:
// observe's gRPC middleware with tracing sampled off (spans not recorded)
// against go-grpc-middleware's Prometheus provider with handling-time
// histograms, server and client both instrumented. Two rows measure what
// grpc-go charges for observe's design, whoever instruments: a traceparent
// on every call, and a server stats handler; what observe adds over
// "noop-stats-handler-server+traceparent" is observe's own work.
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
		// What grpc-go itself charges for a traceparent: a client
		// interceptor adding a fresh one (as any propagating SDK does) to an
		// otherwise bare call; and that plus the server stats handler, the
		// floor under observe's row.
		{"bare+traceparent", func(b *testing.B) {
			runUnary(b, grpcConn(b, nil, []grpc.DialOption{grpc.WithChainUnaryInterceptor(rawTraceparent)}))
		}},
		{"noop-stats-handler-server+traceparent", func(b *testing.B) {
			runUnary(b, grpcConn(b, []grpc.ServerOption{grpc.StatsHandler(noopStats{})},
				[]grpc.DialOption{grpc.WithChainUnaryInterceptor(rawTraceparent)}))
		}},
	})
}

// rawTraceparent sends an unsampled traceparent with fresh random IDs in
// the call's metadata, and does nothing else.
func rawTraceparent(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var ids [24]byte
	for i := 0; i < len(ids); i += 8 {
		binary.LittleEndian.PutUint64(ids[i:], rand.Uint64())
	}
	var tp [55]byte
	copy(tp[:], "00-")
	hex.Encode(tp[3:35], ids[:16])
	tp[35] = '-'
	hex.Encode(tp[36:52], ids[16:])
	copy(tp[52:], "-00")
	return invoker(metadata.AppendToOutgoingContext(ctx, "traceparent", string(tp[:])), method, req, reply, cc, opts...)
}
