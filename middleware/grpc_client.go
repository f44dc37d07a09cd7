package middleware

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/observekit/observe/internal/metrics"
	"github.com/observekit/observe/internal/tracing"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// GRPCClient returns the options that instrument a grpc.ClientConn:
//
//	conn, err := grpc.NewClient(target, append(middleware.GRPCClient(), creds)...)
//
// Every call gets a client span named "pkg.Service/Method" (rpc.system.name,
// rpc.method, rpc.response.status_code, server.address and server.port),
// the trace context is sent in the call's metadata, and
// rpc_client_call_duration_seconds is recorded. Any status but OK sets the
// span's status to error.
//
// The options are chained interceptors (grpc.WithChainUnaryInterceptor and
// grpc.WithChainStreamInterceptor), which see every call the program makes,
// failed ones included; a stream's call ends when gRPC finishes it (its
// final status, a cancel or its deadline).
func GRPCClient(opts ...Option) []grpc.DialOption {
	h := &grpcClientHandler{opts: buildOptions(opts)}
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(h.unary),
		grpc.WithChainStreamInterceptor(h.stream),
	}
}

// grpcClientHandler is the client's interceptors.
type grpcClientHandler struct {
	opts  options
	addrs addrCache
}

// clientCall is one client call's state.
type clientCall struct {
	method string // "pkg.Service/Method"
	start  time.Time
	span   trace.Span
	tp     *tracing.Provider
	m      *metrics.Metrics
	ended  atomic.Bool
	// held: start attributes handed over at the end (see startCallSpan).
	held *[]attribute.KeyValue
	// peer is the server that answered, filled in by gRPC (grpc.Peer) when
	// the span records: a retried call's last attempt.
	peer *peer.Peer
	// peerBuf and optBuf hold the grpc.Peer target and the call's options
	// in the call's own allocation.
	peerBuf peer.Peer
	optBuf  [4]grpc.CallOption

	// propagation headers to send.
	md  [8]string
	nmd int
}

// outgoingMD collects the propagation headers of a client call.
type outgoingMD clientCall

func (c *outgoingMD) Get(string) string { return "" }

func (c *outgoingMD) Set(key, value string) {
	if c.nmd+2 <= len(c.md) {
		c.md[c.nmd] = strings.ToLower(key)
		c.md[c.nmd+1] = value
		c.nmd += 2
	}
}

func (c *outgoingMD) Keys() []string {
	keys := make([]string, 0, c.nmd/2)
	for i := 0; i < c.nmd; i += 2 {
		keys = append(keys, c.md[i])
	}
	return keys
}

func (h *grpcClientHandler) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c := new(clientCall)
	ctx, ok := h.begin(ctx, c, method)
	if !ok {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	if c.span.IsRecording() {
		opts = c.withPeer(opts)
	}
	err := invoker(ctx, method, req, reply, cc, opts...)
	h.end(c, err)
	return err
}

func (h *grpcClientHandler) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	c := new(clientCall)
	ctx, ok := h.begin(ctx, c, method)
	if !ok {
		return streamer(ctx, desc, cc, method, opts...)
	}
	// gRPC calls OnFinish once with the stream's final status, also when
	// the stream could not be created or its context ended first.
	opts = append(opts[:len(opts):len(opts)], grpc.OnFinish(func(err error) { h.end(c, err) }))
	if c.span.IsRecording() {
		opts = c.withPeer(opts)
	}
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		h.end(c, err) // a no-op when OnFinish ran
	}
	return s, err
}

// withPeer returns opts (never modified) and a grpc.Peer option filling in
// c.peer, in c's own buffer when it fits.
func (c *clientCall) withPeer(opts []grpc.CallOption) []grpc.CallOption {
	c.peer = &c.peerBuf
	o := c.optBuf[:0]
	if len(opts) >= len(c.optBuf) {
		o = make([]grpc.CallOption, 0, len(opts)+1)
	}
	return append(append(o, opts...), grpc.Peer(c.peer))
}

// begin starts a call: its span, its start time and the trace context in
// its outgoing metadata. It reports false when the call is not
// instrumented: observe is not initialised (or disabled), or the method
// filter leaves the call out.
func (h *grpcClientHandler) begin(ctx context.Context, c *clientCall, fullMethod string) (context.Context, bool) {
	tp, m := h.opts.instruments()
	if tp == nil && m == nil {
		return ctx, false
	}
	if h.opts.methodFilter != nil && !keepMethod(ctx, h.opts.methodFilter, fullMethod) {
		return ctx, false
	}
	c.method = strings.TrimPrefix(fullMethod, "/")
	c.start = time.Now()
	c.tp, c.m = tp, m
	if tp != nil {
		attrs := [2]attribute.KeyValue{attrRPCSystem, rpcMethodKey.String(c.method)}
		ctx, c.span, c.held = startCallSpan(ctx, tp, c.method, clientOnly, attrs[:])
	} else {
		c.span = trace.SpanFromContext(ctx)
	}
	otel.GetTextMapPropagator().Inject(ctx, (*outgoingMD)(c))
	if c.nmd > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, c.md[:c.nmd]...)
	}
	return ctx, true
}

// end ends a call once, with its final status err.
func (h *grpcClientHandler) end(c *clientCall, err error) {
	if !c.ended.CompareAndSwap(false, true) {
		return
	}
	code := status.Code(err)
	d := time.Since(c.start)
	if c.tp != nil && c.span.IsRecording() {
		ap := takeAttrs(c.held)
		c.held = nil
		attrs := append(*ap, rpcStatusKey.String(metrics.GRPCCodeName(uint32(code))))
		if c.peer != nil && c.peer.Addr != nil {
			if a := h.addrs.get(c.peer.Addr); a.host != "" {
				attrs = append(attrs, attribute.String("server.address", a.host))
				if a.port > 0 {
					attrs = append(attrs, attribute.Int("server.port", a.port))
				}
			}
		}
		if code != codes.OK {
			attrs = append(attrs, attribute.String("error.type", metrics.GRPCCodeName(uint32(code))))
			c.span.SetStatus(otelcodes.Error, statusMessage(err))
		}
		c.span.SetAttributes(attrs...)
		releaseAttrs(ap, attrs)
	}
	if c.tp != nil {
		c.span.End()
	}
	if c.m != nil {
		c.m.RPCClient.Observe(c.method, uint32(code), d, c.span.SpanContext())
	}
}
