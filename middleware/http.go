// Package middleware adapts observe's signals to transports: net/http
// servers and clients and gRPC servers and clients. Each request gets a span
// (continuing the caller's trace), RED metrics with bounded labels, and
// panic safety.
//
// The instruments are those of the Observer given with WithObserver
// (middleware.HTTP(mux, middleware.WithObserver(obs))); without it, those of
// the latest observe.Init, looked up per request. The middleware depends on
// the signal packages only, never on the root package observe: an Observer
// is passed in as the Instruments it offers.
//
// Before Init, or with OTEL_SDK_DISABLED=true, the middleware passes requests
// straight through.
package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/observekit/observe/internal/evidence"
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/internal/metrics"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Option configures a middleware.
type Option func(*options)

type options struct {
	logOpts      // access log and per-request debug (logging.go)
	filter       func(*http.Request) bool
	methodFilter func(fullMethod string) bool
	reqHeaders   []capturedHeader
	respHeaders  []capturedHeader
	obs          *instance.Set // WithObserver's; nil: the current observe instance's
}

// capturedHeader is a header recorded as a span attribute; its attribute key
// is built once, when the middleware is.
type capturedHeader struct {
	name string        // canonical header name
	key  attribute.Key // http.request.header.<lower-case name>
}

// WithFilter skips instrumentation for requests where keep returns false
// (health checks, say). They are still served.
func WithFilter(keep func(*http.Request) bool) Option {
	return func(o *options) { o.filter = keep }
}

// WithCapturedHeaders records the named request and response headers as
// span attributes (http.request.header.<name>, http.response.header.<name>,
// string arrays, as the semantic conventions say). Only the headers named
// are recorded; the values of sensitive ones (Authorization, Cookie,
// X-Api-Key, …) are redacted by the redaction policy before export.
// HTTP and Transport take both lists: request headers are those sent (by
// the client) or received (by the server), response headers the reverse.
func WithCapturedHeaders(request, response []string) Option {
	build := func(prefix string, names []string) []capturedHeader {
		var out []capturedHeader
		seen := map[string]bool{}
		for _, n := range names {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			c := http.CanonicalHeaderKey(n)
			if seen[c] {
				continue
			}
			seen[c] = true
			out = append(out, capturedHeader{name: c, key: attribute.Key(prefix + strings.ToLower(n))})
		}
		return out
	}
	return func(o *options) {
		o.reqHeaders = build("http.request.header.", request)
		o.respHeaders = build("http.response.header.", response)
	}
}

func buildOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

func appendHeaders(attrs []attribute.KeyValue, h http.Header, hs []capturedHeader) []attribute.KeyValue {
	for _, c := range hs {
		if v, ok := h[c.name]; ok {
			attrs = append(attrs, c.key.StringSlice(v))
		}
	}
	return attrs
}

// HTTP wraps next so every request gets a server span named
// "{METHOD} {route}" ("{METHOD}" when no route matched) continuing the
// caller's trace, http_server_request_duration_seconds and
// http_server_active_requests, and panic safety:
//
//   - a panic is recorded as a 500 (span in error, an ERROR log line with the
//     stack and trace_id); the client gets a 500 when nothing was written yet,
//     and the connection is aborted when a response had already begun;
//   - http.ErrAbortHandler is re-panicked after recording.
//
// The span carries the semantic-convention attributes http.request.method,
// url.path, url.query, url.scheme, server.address, server.port,
// client.address, user_agent.original and network.protocol.version from the
// start (so samplers see them), and http.route, http.response.status_code
// and error.type at the end. A 5xx or a panic sets the span's status to
// error; a 4xx does not (it is the client's error).
//
// The route is the ServeMux pattern without its method and host parts (or
// what a router reports through SetRoute), never the raw path.
func HTTP(next http.Handler, opts ...Option) http.Handler {
	o := buildOptions(opts)
	return &httpHandler{next: next, opts: o}
}

type httpHandler struct {
	next http.Handler
	opts options
}

var rwPool = sync.Pool{New: func() any { return new(responseWriter) }}

// attrPool holds the attribute slices handed to the tracer, which copies
// them: the hot path allocates none.
var attrPool = sync.Pool{New: func() any { s := make([]attribute.KeyValue, 0, 16); return &s }}

var (
	serverKind = trace.WithSpanKind(trace.SpanKindServer)
	// Passed as serverOnly... : a variadic call with a fresh slice would
	// allocate one per request.
	serverOnly = []trace.SpanStartOption{serverKind}
)

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tp, m := h.opts.instruments()
	if (tp == nil && m == nil) || (h.opts.filter != nil && !keepRequest(h.opts.filter, r)) {
		h.next.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	ctx := otel.GetTextMapPropagator().Extract(r.Context(), headerCarrier(r.Header))

	var span trace.Span
	var early string               // the route known before the handler ran
	var matched bool               // early comes from matching next (a ServeMux) already
	var held *[]attribute.KeyValue // start attributes held for the end, or nil
	if tp != nil {
		// A route known before the handler runs goes in from the start:
		// span↔profile links (profiling.LinkSpans) label the request's CPU
		// samples with it. Matching next for it costs a second ServeMux
		// match, only paid when those links are on.
		// While an anomaly keeps a route's traces, the sampler needs the
		// route in the span's name (internal/evidence).
		early, matched = h.startRoute(r, tp.TracerWrapped() || evidence.Active())
		name := spanName(r.Method, early)
		if tp.StartAttributesObserved() {
			// The semantic conventions want these at creation, for samplers.
			ap := attrPool.Get().(*[]attribute.KeyValue)
			attrs := h.startAttrs((*ap)[:0], r, early)
			ctx, span = tp.Tracer().Start(ctx, name, serverKind, trace.WithAttributes(attrs...))
			clear(attrs)
			*ap = attrs[:0]
			attrPool.Put(ap)
		} else {
			// Nothing looks at them before the end: hand them over then,
			// with the rest, in one copy instead of three. Unsampled
			// requests never build them.
			ctx, span = tp.Tracer().Start(ctx, name, serverOnly...)
			if span.IsRecording() {
				held = attrPool.Get().(*[]attribute.KeyValue)
				*held = h.startAttrs((*held)[:0], r, early)
			}
		}
	} else {
		span = trace.SpanFromContext(ctx)
	}
	ctx, rl := startRequestLog(ctx, r)
	var active interface{ Dec() }
	if m != nil {
		active = m.HTTPServer.Start(r.Method)
	}
	rc := &requestContext{Context: ctx}
	rw := rwPool.Get().(*responseWriter)
	rw.reset(w)
	r2 := r.WithContext(rc)
	var body *countingBody
	if m != nil {
		body = countBody(r, r2)
	}

	defer func() {
		p := recover()
		status := rw.status
		if p != nil {
			status = http.StatusInternalServerError
		} else if !rw.wroteHeader {
			status = http.StatusOK
		}
		route := rc.route
		if !rc.routeSet {
			route = patternRoute(r2, r2.Pattern)
			if route == "" {
				if matched {
					route = early // the same match again would say the same
				} else {
					route = h.muxRoute(r2)
				}
			}
		}
		end := time.Now()
		d := end.Sub(start)
		h.opts.endHTTP(rc, rl, r, route, status, rw.written, end, d)
		if tp != nil {
			h.endServerSpan(span, rw, held, r.Method, early, route, status, p)
		}
		if m != nil {
			active.Dec()
			m.HTTPServer.ObserveWithSizes(r.Method, route, status, d, requestBodySize(r, body), rw.written, span.SpanContext())
		}
		wrote := rw.wroteHeader
		rw.reset(nil)
		rwPool.Put(rw)
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler {
			panic(p)
		}
		slog.Default().ErrorContext(rc, "panic in HTTP handler",
			slog.String("http.request.method", r.Method),
			slog.String("http.route", route),
			slog.String("panic", fmt.Sprint(p)),
			slog.String("stack", string(debug.Stack())),
		)
		if !wrote {
			http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
			return
		}
		// The response had begun: abort the connection so the client does
		// not take a truncated body for a complete one. net/http does not log
		// this sentinel.
		panic(http.ErrAbortHandler)
	}()
	h.next.ServeHTTP(rw, r2)
}

// muxRoute finds the route when the ServeMux pattern did not reach us: an
// inner middleware gave the mux a copy of the request (r.WithContext), so
// the mux set Pattern on the copy. Only when next is a ServeMux; it costs a
// second match, and only on requests whose route is still unknown.
func (h *httpHandler) muxRoute(r *http.Request) string {
	mux, ok := h.next.(*http.ServeMux)
	if !ok {
		return ""
	}
	_, pattern := mux.Handler(r)
	return patternRoute(r, pattern)
}

// startRoute is the route before the handler runs: the pattern of the
// ServeMux that mounted this middleware, or, when match is set, that of next
// when next is a ServeMux (a second match, about 0.2µs and two allocations);
// matched reports that second match.
func (h *httpHandler) startRoute(r *http.Request, match bool) (route string, matched bool) {
	if route := patternRoute(r, r.Pattern); route != "" {
		return route, false
	}
	if !match {
		return "", false
	}
	if _, ok := h.next.(*http.ServeMux); !ok {
		return "", false
	}
	return h.muxRoute(r), true
}

// requestContext is the request's context as the handler sees it: the
// tracing context plus the route a router reports through SetRoute. One
// allocation instead of a context.WithValue and its value.
type requestContext struct {
	context.Context
	route    string
	routeSet bool
}

type routeKey struct{}

func (c *requestContext) Value(key any) any {
	if key == (routeKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// appendServerStartAttrs appends the attributes known when the request
// arrives; the semantic conventions want them at span creation, for samplers.
func appendServerStartAttrs(attrs []attribute.KeyValue, r *http.Request) []attribute.KeyValue {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	method := metrics.MethodLabel(r.Method)
	attrs = append(attrs,
		attribute.String("http.request.method", method),
		attribute.String("url.path", r.URL.Path),
		attribute.String("url.scheme", scheme),
	)
	if method == metrics.Other {
		attrs = append(attrs, attribute.String("http.request.method_original", truncate(r.Method, 64)))
	}
	if q := r.URL.RawQuery; q != "" {
		// Sensitive values are masked by the redaction policy at export.
		attrs = append(attrs, attribute.String("url.query", q))
	}
	if host, port := splitHostPort(r.Host); host != "" {
		attrs = append(attrs, attribute.String("server.address", host))
		if port > 0 {
			attrs = append(attrs, attribute.Int("server.port", port))
		}
	}
	if host, _ := splitHostPort(r.RemoteAddr); host != "" {
		attrs = append(attrs, attribute.String("client.address", host))
	}
	if ua := r.Header["User-Agent"]; len(ua) > 0 && ua[0] != "" {
		attrs = append(attrs, attribute.String("user_agent.original", ua[0]))
	}
	return append(attrs, attribute.String("network.protocol.version", protoVersion(r.ProtoMajor, r.ProtoMinor)))
}

func protoVersion(major, minor int) string {
	switch {
	case major == 2:
		return "2"
	case major == 3:
		return "3"
	case major == 1 && minor == 0:
		return "1.0"
	}
	return "1.1"
}

// splitHostPort splits "host:port", "[v6]:port", "host" or "[v6]" without
// allocating; port is 0 when absent or not a number.
func splitHostPort(hp string) (host string, port int) {
	if hp == "" {
		return "", 0
	}
	if hp[0] == '[' {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return hp, 0
		}
		host = hp[1:end]
		if len(hp) > end+2 && hp[end+1] == ':' {
			if p, err := strconv.Atoi(hp[end+2:]); err == nil && p >= 0 && p <= 65535 {
				port = p
			}
		}
		return host, port
	}
	i := strings.LastIndexByte(hp, ':')
	if i < 0 || strings.IndexByte(hp[:i], ':') >= 0 {
		return hp, 0 // no port, or a bare IPv6 address
	}
	port, err := strconv.Atoi(hp[i+1:])
	if err != nil || port < 0 || port > 65535 {
		port = 0
	}
	return hp[:i], port
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// startAttrs appends the span's attributes known when the request arrives.
func (h *httpHandler) startAttrs(attrs []attribute.KeyValue, r *http.Request, route string) []attribute.KeyValue {
	attrs = appendServerStartAttrs(attrs, r)
	attrs = appendHeaders(attrs, r.Header, h.opts.reqHeaders)
	if route != "" {
		attrs = append(attrs, attribute.String("http.route", route))
	}
	return attrs
}

// endServerSpan names and ends the span with the attributes learnt from the
// response, after held (the start attributes not handed over yet, or nil).
func (h *httpHandler) endServerSpan(span trace.Span, rw *responseWriter, held *[]attribute.KeyValue, method, early, route string, status int, p any) {
	if !span.IsRecording() {
		span.End()
		return
	}
	span.SetName(spanName(method, route))
	ap := held
	if ap == nil {
		ap = attrPool.Get().(*[]attribute.KeyValue)
	}
	defer func() {
		clear(*ap)
		*ap = (*ap)[:0]
		attrPool.Put(ap)
	}()
	attrs := append(*ap, attribute.Int("http.response.status_code", status))
	if route != "" && route != early {
		attrs = append(attrs, attribute.String("http.route", route))
	}
	switch {
	case p != nil:
		errType := "panic"
		if p == http.ErrAbortHandler {
			errType = "http.ErrAbortHandler"
		}
		attrs = append(attrs, attribute.String("error.type", errType))
		span.SetStatus(codes.Error, fmt.Sprint(p))
		span.RecordError(panicError(p), trace.WithStackTrace(true))
	case status >= 500:
		attrs = append(attrs, attribute.String("error.type", metrics.StatusLabel(status)))
		span.SetStatus(codes.Error, "")
	}
	if len(h.opts.respHeaders) > 0 && rw.w != nil {
		attrs = appendHeaders(attrs, rw.w.Header(), h.opts.respHeaders)
	}
	span.SetAttributes(attrs...)
	*ap = attrs
	span.End()
}

// methodName is the span name when no route matched.
func methodName(method string) string {
	if m := metrics.MethodLabel(method); m != metrics.Other {
		return m
	}
	return "HTTP"
}

// spanNames caches "{METHOD} {route}" so the hot path does not concatenate.
// It is bounded: a router adapter that reports raw paths through SetRoute
// must not grow memory without limit (past the cap names are built per call).
var (
	spanNames    sync.Map // spanNameKey -> string
	spanNamesLen atomic.Int64
)

const spanNamesCap = 4096

type spanNameKey struct{ method, route string }

func spanName(method, route string) string {
	method = methodName(method)
	if route == "" {
		return method
	}
	k := spanNameKey{method, route}
	if n, ok := spanNames.Load(k); ok {
		return n.(string)
	}
	n := method + " " + route
	if spanNamesLen.Load() < spanNamesCap {
		if _, loaded := spanNames.LoadOrStore(k, n); !loaded {
			spanNamesLen.Add(1)
		}
	}
	return n
}

// routeFromPattern turns a ServeMux pattern ("GET example.com/users/{id}")
// into the route template ("/users/{id}").
func routeFromPattern(p string) string {
	if p == "" {
		return ""
	}
	if i := strings.IndexByte(p, ' '); i >= 0 {
		p = strings.TrimLeft(p[i+1:], " \t")
	}
	if p != "" && p[0] != '/' {
		if i := strings.IndexByte(p, '/'); i >= 0 {
			p = p[i:]
		} else {
			return ""
		}
	}
	return p
}

// SetRoute reports the matched route template for the request whose context
// is ctx; router adapters (chi, gorilla/mux, an OpenAPI router) call it from
// inside the handler chain. It wins over the ServeMux pattern. It returns
// false when ctx does not come from observe's HTTP middleware.
//
// Pass a template ("/users/{id}"), never a raw path: every distinct value
// is a metric series (bounded by the series limit, past which it is _OTHER)
// and part of a span name.
func SetRoute(ctx context.Context, route string) bool {
	rc, ok := ctx.Value(routeKey{}).(*requestContext)
	if !ok {
		return false
	}
	rc.route = route
	rc.routeSet = true
	return true
}

var errNoHijack = errors.New("observe: the underlying ResponseWriter does not support hijacking")

// headerCarrier is propagation.HeaderCarrier without the allocation of
// canonicalizing the propagators' lower-case header names on every request.
type headerCarrier http.Header

func canonicalKey(key string) string {
	switch key {
	case "traceparent":
		return "Traceparent"
	case "tracestate":
		return "Tracestate"
	case "baggage":
		return "Baggage"
	case "b3":
		return "B3"
	case "x-b3-traceid":
		return "X-B3-Traceid"
	case "x-b3-spanid":
		return "X-B3-Spanid"
	case "x-b3-sampled":
		return "X-B3-Sampled"
	case "x-b3-flags":
		return "X-B3-Flags"
	case "x-b3-parentspanid":
		return "X-B3-Parentspanid"
	}
	return http.CanonicalHeaderKey(key)
}

// Get returns the first value of key.
func (hc headerCarrier) Get(key string) string {
	if v := hc[canonicalKey(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns every value of key (several baggage headers, say).
func (hc headerCarrier) Values(key string) []string { return hc[canonicalKey(key)] }

// Set replaces the values of key.
func (hc headerCarrier) Set(key, value string) { hc[canonicalKey(key)] = []string{value} }

// Keys lists the header names.
func (hc headerCarrier) Keys() []string {
	keys := make([]string, 0, len(hc))
	for k := range hc {
		keys = append(keys, k)
	}
	return keys
}

// keepRequest runs the program's filter. A filter that panics keeps the
// request (served and instrumented, as without a filter) and the panic is
// logged: a bug in a filter must not take requests down.
func keepRequest(keep func(*http.Request) bool, r *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = true
			slog.Default().ErrorContext(r.Context(), "panic in middleware filter",
				slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(debug.Stack())))
		}
	}()
	return keep(r)
}

// panicError is the error recorded for a recovered panic value: the value
// itself when it is an error whose Error method works, else one holding its
// printed form (fmt contains a panicking Error or String method, the span
// SDK does not).
func panicError(p any) (err error) {
	e, ok := p.(error)
	if !ok {
		return errors.New(fmt.Sprint(p))
	}
	defer func() {
		if recover() != nil {
			err = errors.New(fmt.Sprint(p))
		}
	}()
	_ = e.Error()
	return e
}
