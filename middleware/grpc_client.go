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
	"google.golang.org/grpc/status"
)

// GRPCClient returns the options that instrument a grpc.ClientConn:
//
//	conn, err := grpc.NewClient(target, append(middleware.GRPCClient(), creds)...)
//
// Every call gets a client span named "pkg.Service/Method" (rpc.system.name,
// rpc.method, rpc.response.status_code, and server.address and server.port
// from the connection's target: the name dialled, not the address it
// resolved to, as the semantic conventions ask and otelgrpc does),
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
	opts    options
	targets targetCache
}

// targetCache remembers the server addresses of the last few connections
// it saw: a program's calls through one ClientConn share its target, and a
// few ClientConns may share one set of options. It holds at most
// targetCacheSize of them (closed ones included, until replaced).
type targetCache struct {
	recent atomic.Pointer[[]*targetEntry]
}

const targetCacheSize = 4

type targetEntry struct {
	cc   *grpc.ClientConn
	host string
	port int
}

func (t *targetCache) get(cc *grpc.ClientConn) *targetEntry {
	old := t.recent.Load()
	if old != nil {
		for _, e := range *old {
			if e.cc == cc {
				return e
			}
		}
	}
	e := &targetEntry{cc: cc}
	if cc != nil {
		e.host, e.port = targetAddr(cc.CanonicalTarget(), cc.Target())
	}
	next := []*targetEntry{e}
	if old != nil {
		next = append(next, (*old)[:min(len(*old), targetCacheSize-1)]...)
	}
	t.recent.Store(&next)
	return e
}

// targetAddr is a connection's server address: the host and port of its
// canonical target ("scheme://authority/endpoint" as grpc-go writes it, the
// endpoint unescaped: "dns:///orders:8081" is orders and 8081), or for a
// unix socket the path as the program gave it (target), which the
// canonical form turns absolute whether it was or not.
func targetAddr(canonical, target string) (string, int) {
	scheme, rest, ok := strings.Cut(canonical, "://")
	if !ok {
		return splitHostPort(canonical)
	}
	if scheme == "unix" || scheme == "unix-abstract" {
		path := strings.TrimPrefix(target, scheme+":")
		if strings.HasPrefix(path, "//") {
			path = path[2:] // "unix:///run/app.sock": an empty authority
		}
		return path, 0
	}
	_, endpoint, _ := strings.Cut(rest, "/")
	return splitHostPort(endpoint)
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
	cc   *grpc.ClientConn

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
	ctx, ok := h.begin(ctx, c, method, cc)
	if !ok {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	err := invoker(ctx, method, req, reply, cc, opts...)
	h.end(c, err)
	return err
}

func (h *grpcClientHandler) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	c := new(clientCall)
	ctx, ok := h.begin(ctx, c, method, cc)
	if !ok {
		return streamer(ctx, desc, cc, method, opts...)
	}
	// gRPC calls OnFinish once with the stream's final status, also when
	// the stream could not be created or its context ended first.
	opts = append(opts[:len(opts):len(opts)], grpc.OnFinish(func(err error) { h.end(c, err) }))
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		h.end(c, err) // a no-op when OnFinish ran
	}
	return s, err
}

// begin starts a call: its span, its start time and the trace context in
// its outgoing metadata. It reports false when the call is not
// instrumented: observe is not initialised (or disabled), or the method
// filter leaves the call out.
func (h *grpcClientHandler) begin(ctx context.Context, c *clientCall, fullMethod string, cc *grpc.ClientConn) (context.Context, bool) {
	tp, m := h.opts.instruments()
	if tp == nil && m == nil {
		return ctx, false
	}
	if h.opts.methodFilter != nil && !keepMethod(ctx, h.opts.methodFilter, fullMethod) {
		return ctx, false
	}
	c.method = strings.TrimPrefix(fullMethod, "/")
	c.start = time.Now()
	c.tp, c.m, c.cc = tp, m, cc
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
		if a := h.targets.get(c.cc); a.host != "" {
			attrs = append(attrs, attribute.String("server.address", a.host))
			if a.port > 0 {
				attrs = append(attrs, attribute.Int("server.port", a.port))
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
