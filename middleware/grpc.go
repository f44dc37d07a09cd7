package middleware

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
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
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// WithMethodFilter skips instrumentation (span and metrics) for gRPC calls
// whose full method ("/pkg.Service/Method") keep returns false, health
// checks say. Panic recovery still applies.
func WithMethodFilter(keep func(fullMethod string) bool) Option {
	return func(o *options) { o.methodFilter = keep }
}

// GRPCServer returns the options that instrument a grpc.Server:
//
//	srv := grpc.NewServer(middleware.GRPCServer()...)
//
// Every call, unary or streaming, gets a server span continuing the
// caller's trace, named "pkg.Service/Method", with rpc.system.name=grpc,
// rpc.method and rpc.response.status_code, and
// rpc_server_call_duration_seconds. A method the server does not serve is
// recorded as rpc.method=_OTHER (rpc.method_original holds what was asked,
// the span is named "grpc"), and its span ends like any other, whether the
// server rejects it or an UnknownServiceHandler serves it.
//
// A panicking handler is recovered: the call fails with INTERNAL (the panic
// value is not sent to the client), the span records the panic, and an ERROR
// line with the stack and trace_id is logged.
//
// The interceptors are chained (grpc.ChainUnaryInterceptor and
// grpc.ChainStreamInterceptor), so they compose with yours; put these
// options first to have panic recovery cover your interceptors too. The
// span and the metric come from a stats.Handler, the one place that sees
// the calls gRPC fails before any interceptor runs: methods the server does
// not serve, requests it cannot read, clients gone before dispatch. The
// span starts at the call's stats.InHeader event: another stats.Handler of
// the program's, after these options, finds it in the context from its own
// InHeader on, not yet in its TagRPC.
func GRPCServer(opts ...Option) []grpc.ServerOption {
	h := &grpcServerHandler{opts: buildOptions(opts)}
	return []grpc.ServerOption{
		grpc.StatsHandler(h),
		grpc.ChainUnaryInterceptor(h.unaryInterceptor),
		grpc.ChainStreamInterceptor(h.streamInterceptor),
	}
}

var (
	attrRPCSystem = attribute.String("rpc.system.name", "grpc")
	rpcStatusKey  = attribute.Key("rpc.response.status_code")
	rpcMethodKey  = attribute.Key("rpc.method")
)

// rpcState is one server call's state; it is also the call's context (the tracing
// context plus itself as a value), which saves a context.WithValue.
type rpcState struct {
	context.Context
	method string // "pkg.Service/Method"
	start  time.Time
	span   trace.Span
	tp     *tracing.Provider
	m      *metrics.Metrics

	// started: begin ran (server); md: the call's metadata while it runs.
	started bool
	md      metadata.MD

	begun atomic.Bool  // server: stats.Begin seen, the server dispatched the call
	known atomic.Int32 // server: 0 unknown yet, knownMethod, unknownMethod
	ended atomic.Bool
	stop  atomic.Pointer[func() bool] // server: stops the safety net (afterCallContext)
	log   requestLog                  // server: per-request debug (logging.go)
	// baggage: what the propagator's Extract saw of the "baggage" metadata
	// (server): 0 not asked, baggageAbsent, baggagePresent; saves
	// startRPCLog a second lookup, a scan of the whole metadata on a miss.
	baggage int8

	// held: start attributes handed over at the end, when nothing looks at
	// them at the start (see tracing.Provider.StartAttributesObserved).
	held *[]attribute.KeyValue
}

// addrCache remembers the last address it split: the calls of one
// connection share a *net.TCPAddr, whose String would allocate every time.
type addrCache struct{ last atomic.Pointer[addrEntry] }

type addrEntry struct {
	addr net.Addr
	host string
	port int
}

func (c *addrCache) get(a net.Addr) *addrEntry {
	if e := c.last.Load(); e != nil && sameAddr(e.addr, a) {
		return e
	}
	e := &addrEntry{addr: a}
	if t, ok := a.(*net.TCPAddr); ok {
		e.host, e.port = t.IP.String(), t.Port
	} else {
		e.host, e.port = splitHostPort(a.String())
	}
	c.last.Store(e)
	return e
}

// sameAddr compares without panicking on an Addr type that == cannot
// compare.
func sameAddr(x, y net.Addr) bool {
	if tx, ok := x.(*net.TCPAddr); ok {
		ty, ok := y.(*net.TCPAddr)
		return ok && tx == ty
	}
	t := reflect.TypeOf(x)
	return t != nil && t == reflect.TypeOf(y) && t.Comparable() && x == y
}

// startCallSpan starts a call's span named name with attrs, now or, when
// nothing looks at them before the end, held (returned) for the end to hand
// over with the rest.
func startCallSpan(ctx context.Context, tp *tracing.Provider, name string, kind []trace.SpanStartOption, attrs []attribute.KeyValue) (context.Context, trace.Span, *[]attribute.KeyValue) {
	var span trace.Span
	if tp.StartAttributesObserved() {
		// Through a pooled copy, so the caller's attrs stay on its stack.
		ap := attrPool.Get().(*[]attribute.KeyValue)
		a := append((*ap)[:0], attrs...)
		ctx, span = tp.Tracer().Start(ctx, name, kind[0], trace.WithAttributes(a...))
		releaseAttrs(ap, a)
		return ctx, span, nil
	}
	ctx, span = tp.Tracer().Start(ctx, name, kind...)
	if !span.IsRecording() {
		return ctx, span, nil
	}
	held := attrPool.Get().(*[]attribute.KeyValue)
	*held = append((*held)[:0], attrs...)
	return ctx, span, held
}

const (
	knownMethod   = 1
	unknownMethod = 2
)

type rpcStateKey struct{}

func (s *rpcState) Value(key any) any {
	if key == (rpcStateKey{}) {
		return s
	}
	return s.Context.Value(key)
}

func rpcStateFrom(ctx context.Context) *rpcState {
	s, _ := ctx.Value(rpcStateKey{}).(*rpcState)
	return s
}

// incomingMD reads the propagation headers of a server call from its
// incoming metadata, without copying the whole of it.
type incomingMD rpcState

func (c *incomingMD) Get(key string) string {
	if v := c.Values(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c *incomingMD) Values(key string) []string {
	v := callMD(c.Context, c.md, key)
	if key == "baggage" {
		c.baggage = baggageAbsent
		if v != nil {
			c.baggage = baggagePresent
		}
	}
	return v
}

// callMD returns a server call's metadata values for key: from md, the copy
// stats.InHeader carries (lowercase keys, read directly), or when md is nil
// from the context's. strings.ToLower returns a lowercase key as it is.
func callMD(ctx context.Context, md metadata.MD, key string) []string {
	if md != nil {
		return md[strings.ToLower(key)]
	}
	return metadata.ValueFromIncomingContext(ctx, key)
}

const (
	baggageAbsent  = 1
	baggagePresent = 2
)

func (c *incomingMD) Set(string, string) {}

func (c *incomingMD) Keys() []string {
	md := c.md
	if md == nil {
		md, _ = metadata.FromIncomingContext(c.Context)
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	return keys
}

// newRPCState starts the per-call state shared by the server and client
// handlers, or returns nil when the call is not instrumented: observe is not
// initialised (or disabled), or the method filter leaves the call out.
func newRPCState(ctx context.Context, o options, fullMethod string) *rpcState {
	tp, m := o.instruments()
	if tp == nil && m == nil {
		return nil
	}
	if o.methodFilter != nil && !keepMethod(ctx, o.methodFilter, fullMethod) {
		return nil
	}
	return &rpcState{
		method: strings.TrimPrefix(fullMethod, "/"),
		start:  time.Now(),
		tp:     tp,
		m:      m,
	}
}

// grpcServerHandler is the server's stats.Handler and interceptors.
type grpcServerHandler struct {
	opts  options
	addrs addrCache
	// served holds the methods this server was seen to dispatch to a
	// registered handler: bounded by what the server registers.
	served sync.Map // string -> struct{}
}

func (h *grpcServerHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (h *grpcServerHandler) HandleConn(context.Context, stats.ConnStats) {}

func (h *grpcServerHandler) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	st := newRPCState(ctx, h.opts, info.FullMethodName)
	if st == nil {
		return ctx
	}
	st.Context = ctx
	return st
}

// begin starts a server call's span and logging from its headers. md is
// the call's metadata as grpc-go hands it to stats.InHeader, right after
// TagRPC and before anything derives from the call's context: a copy with
// lowercase keys, read here directly, where the context's metadata would
// take a copy for each header found and a scan of all of them for each one
// missing (tracestate, baggage, x-observe-debug, most of the time). A nil
// md reads the context's: the fallback for a call whose first event is not
// stats.InHeader. begin runs once, on the goroutine gRPC serves the call
// on, and before the safety net below exists.
func (h *grpcServerHandler) begin(st *rpcState, md metadata.MD) {
	if st.started {
		return
	}
	st.started = true
	tp := st.tp
	st.md = md
	ctx := otel.GetTextMapPropagator().Extract(st.Context, (*incomingMD)(st))
	if tp != nil {
		var buf [4]attribute.KeyValue
		attrs := append(buf[:0], attrRPCSystem, rpcMethodKey.String(st.method))
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			if a := h.addrs.get(p.Addr); a.host != "" {
				attrs = append(attrs, attribute.String("client.address", a.host))
				if a.port > 0 {
					attrs = append(attrs, attribute.Int("client.port", a.port))
				}
			}
		}
		ctx, st.span, st.held = startCallSpan(ctx, tp, st.method, serverOnly, attrs)
	} else {
		st.span = trace.SpanFromContext(ctx)
	}
	ctx, st.log = startRPCLog(ctx, md, st.baggage == baggageAbsent)
	st.md = nil
	st.Context = ctx
	if _, served := h.served.Load(st.method); !served {
		// A method not yet seen served may be one the server rejects
		// without a stats.End, or even without a stats.OutTrailer when the
		// client is gone before the server answers: then nothing but the
		// end of the call's context is seen, and a safety net ends the span.
		stop := context.AfterFunc(ctx, func() { h.afterCallContext(st) })
		st.stop.Store(&stop)
	}
}

// rejectGrace is how long after a call's context ended without the call
// being dispatched the safety net waits for gRPC's own verdict (stats.Begin
// or stats.OutTrailer, due within microseconds on the serving goroutine).
const rejectGrace = 2 * time.Second

// afterCallContext runs when the context of a call to a method not yet
// seen served ends. The context also ends before the server dispatches a
// call when the client gives up early (a deadline, a cancel, a closed
// connection): then stats.Begin and stats.End still follow, with the true
// status. So the end of the context decides nothing at once. Only a call
// that gets neither stats.Begin nor stats.OutTrailer within rejectGrace (a
// rejected method whose client was gone before the answer) is ended here,
// with the context's status (CANCELLED, DEADLINE_EXCEEDED) at the moment
// the context ended. UNIMPLEMENTED comes only from gRPC's own answer.
func (h *grpcServerHandler) afterCallContext(st *rpcState) {
	if st.begun.Load() || st.ended.Load() {
		return
	}
	doneAt := time.Now()
	code := status.FromContextError(st.Err()).Code()
	t := time.AfterFunc(rejectGrace, func() {
		if !st.begun.Load() {
			h.finishAt(st, code, nil, doneAt)
		}
	})
	stop := t.Stop
	st.stop.Store(&stop)
}

func (h *grpcServerHandler) HandleRPC(ctx context.Context, rs stats.RPCStats) {
	switch ev := rs.(type) {
	case *stats.InHeader:
		if st := rpcStateFrom(ctx); st != nil {
			h.begin(st, ev.Header)
		}
	case *stats.Begin:
		if st := rpcStateFrom(ctx); st != nil {
			h.begin(st, nil)
			// A call that is not bidirectional streaming is a registered
			// method: the UnknownServiceHandler's calls are both ways. Said
			// here as well as by the interceptors, which a call failing
			// before its handler (a client gone early) never reaches.
			if !ev.IsClientStream || !ev.IsServerStream {
				st.known.CompareAndSwap(0, knownMethod)
			}
			st.begun.Store(true)
		}
	case *stats.OutTrailer:
		// The server wrote the final status. Without a stats.Begin before
		// it, the server rejected the call itself (unknown service or
		// method, malformed name: UNIMPLEMENTED) and no stats.End follows.
		if st := rpcStateFrom(ctx); st != nil && !st.begun.Load() {
			h.begin(st, nil)
			h.finish(st, codes.Unimplemented, nil)
		}
	case *stats.End:
		if st := rpcStateFrom(ctx); st != nil {
			h.begin(st, nil)
			h.finish(st, status.Code(ev.Error), ev.Error)
		}
	}
}

// methodLabel is rpc.method: the method when the server serves it, else
// _OTHER, so a client cannot grow a metric or span names at will.
func (h *grpcServerHandler) methodLabel(st *rpcState) string {
	switch st.known.Load() {
	case knownMethod:
		return st.method
	case unknownMethod:
		return metrics.Other
	}
	// Our interceptor did not run: an earlier interceptor or the request's
	// decoding failed it. Trust what this server was seen to serve before.
	if _, ok := h.served.Load(st.method); ok {
		return st.method
	}
	return metrics.Other
}

func (h *grpcServerHandler) finish(st *rpcState, code codes.Code, err error) {
	h.finishAt(st, code, err, time.Time{})
}

// finishAt ends a server call as of at, or now when at is zero.
func (h *grpcServerHandler) finishAt(st *rpcState, code codes.Code, err error, at time.Time) {
	if !st.ended.CompareAndSwap(false, true) {
		return
	}
	if stop := st.stop.Load(); stop != nil {
		(*stop)()
	}
	end := at
	if end.IsZero() {
		end = time.Now()
	}
	d := end.Sub(st.start)
	label := h.methodLabel(st)
	h.opts.endRPC(st, st.log, label, code, end, d)
	span := st.span
	if st.tp != nil && span.IsRecording() {
		ap := takeAttrs(st.held)
		st.held = nil
		attrs := append(*ap, rpcStatusKey.String(metrics.GRPCCodeName(uint32(code))))
		if label == metrics.Other {
			span.SetName("grpc")
			attrs = append(attrs, rpcMethodKey.String(metrics.Other),
				attribute.String("rpc.method_original", truncate(st.method, 256)))
		}
		if serverError(code) {
			attrs = append(attrs, attribute.String("error.type", metrics.GRPCCodeName(uint32(code))))
			span.SetStatus(otelcodes.Error, statusMessage(err))
		}
		span.SetAttributes(attrs...)
		releaseAttrs(ap, attrs)
	}
	// The span's end before the metric: tail sampling decides at the end
	// whether to keep the trace, and only a kept trace's span context may
	// become the duration's exemplar. (A test that waits for the span must
	// poll for the metric.)
	if st.tp != nil {
		if at.IsZero() {
			span.End()
		} else {
			span.End(trace.WithTimestamp(at))
		}
	}
	if st.m != nil {
		st.m.RPCServer.Observe(label, uint32(code), d, span.SpanContext())
	}
}

// serverError reports whether a status code is the server's failure, as the
// semantic conventions for gRPC say; the others are the client's.
func serverError(c codes.Code) bool {
	switch c {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

func statusMessage(err error) string {
	if err == nil {
		return ""
	}
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}

func (h *grpcServerHandler) markServed(ctx context.Context, method string, served bool) {
	if st := rpcStateFrom(ctx); st != nil {
		if served {
			st.known.Store(knownMethod)
		} else {
			st.known.Store(unknownMethod)
		}
	}
	if served {
		m := strings.TrimPrefix(method, "/")
		if _, ok := h.served.Load(m); !ok {
			h.served.Store(m, struct{}{})
		}
	}
}

// unaryInterceptor runs only for methods the server registered, and
// recovers panics.
func (h *grpcServerHandler) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	h.markServed(ctx, info.FullMethod, true)
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, recoverGRPC(ctx, info.FullMethod, p)
		}
	}()
	return handler(ctx, req)
}

// streamInterceptor runs for registered streaming methods and for the
// UnknownServiceHandler, which gets no service implementation (srv == nil),
// and recovers panics.
func (h *grpcServerHandler) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	ctx := ss.Context()
	h.markServed(ctx, info.FullMethod, srv != nil)
	defer func() {
		if p := recover(); p != nil {
			err = recoverGRPC(ctx, info.FullMethod, p)
		}
	}()
	return handler(srv, ss)
}

// recoverGRPC records a handler's panic (span, ERROR log with stack and
// trace_id) and returns the INTERNAL status the client gets.
func recoverGRPC(ctx context.Context, fullMethod string, p any) error {
	stack := debug.Stack()
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		span.RecordError(panicError(p), trace.WithAttributes(
			attribute.String("exception.stacktrace", string(stack)),
			attribute.Bool("exception.escaped", false),
		))
		span.SetAttributes(attribute.String("error.type", "panic"))
	}
	slog.Default().ErrorContext(ctx, "panic in gRPC handler",
		slog.String("rpc.method", strings.TrimPrefix(fullMethod, "/")),
		slog.String("panic", fmt.Sprint(p)),
		slog.String("stack", string(stack)),
	)
	return status.Error(codes.Internal, "internal error")
}

// keepMethod runs the program's method filter. It runs in gRPC's stats
// handler, where nothing recovers: a filter that panics keeps the call
// (instrumented, as without a filter) and the panic is logged.
func keepMethod(ctx context.Context, keep func(fullMethod string) bool, fullMethod string) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = true
			slog.Default().ErrorContext(ctx, "panic in middleware method filter",
				slog.String("rpc.method", strings.TrimPrefix(fullMethod, "/")),
				slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(debug.Stack())))
		}
	}()
	return keep(fullMethod)
}
