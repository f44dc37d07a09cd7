// Package middleware adapts observe's signals to transports: net/http
// servers and clients and gRPC servers and clients. Each request gets a span
// (continuing the caller's trace), RED metrics with bounded labels, and
// panic safety; the instruments are those of the current observe.Init.
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
	"strings"
	"sync"
	"time"

	"github.com/observekit/observe/metrics"
	"github.com/observekit/observe/tracing"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Option configures a middleware.
type Option func(*options)

type options struct {
	filter func(*http.Request) bool
}

// WithFilter skips instrumentation for requests where keep returns false
// (health checks, say). They are still served.
func WithFilter(keep func(*http.Request) bool) Option {
	return func(o *options) { o.filter = keep }
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

// HTTP wraps next so every request gets a server span named
// "{METHOD} {route}", http_server_request_duration_seconds and
// http_server_active_requests, and panic safety:
//
//   - a panic is recorded as a 500 (span in error, an ERROR log line with the
//     stack and trace_id); the client gets a 500 when nothing was written yet,
//     and the connection is aborted when a response had already begun;
//   - http.ErrAbortHandler is re-panicked after recording.
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

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tp := tracing.Current()
	m := metrics.Current()
	if (tp == nil && m == nil) || (h.opts.filter != nil && !h.opts.filter(r)) {
		h.next.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	ctx := r.Context()
	prop := otel.GetTextMapPropagator()
	ctx = prop.Extract(ctx, propagation.HeaderCarrier(r.Header))

	rs := &routeState{}
	ctx = context.WithValue(ctx, routeKey{}, rs)

	var span trace.Span
	if tp != nil {
		ctx, span = tp.Tracer().Start(ctx, methodName(r.Method),
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithTimestamp(start),
			trace.WithAttributes(serverStartAttrs(r)...),
		)
	} else {
		span = trace.SpanFromContext(ctx)
	}
	var active interface{ Dec() }
	if m != nil {
		active = m.HTTPServer.Start(r.Method)
	}

	rw := rwPool.Get().(*responseWriter)
	rw.reset(w)
	r2 := r.WithContext(ctx)

	defer func() {
		p := recover()
		status := rw.status
		if p != nil {
			status = http.StatusInternalServerError
		} else if !rw.wroteHeader {
			status = http.StatusOK
		}
		route := rs.route
		if route == "" {
			route = routeFromPattern(r2.Pattern)
		}
		d := time.Since(start)
		if tp != nil {
			endServerSpan(span, r.Method, route, status, p)
		}
		if m != nil {
			active.Dec()
			m.HTTPServer.Observe(r.Method, route, status, d, span.SpanContext())
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
		slog.Default().ErrorContext(ctx, "panic in HTTP handler",
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

func serverStartAttrs(r *http.Request) []attribute.KeyValue {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs,
		attribute.String("http.request.method", metrics.MethodLabel(r.Method)),
		attribute.String("url.path", r.URL.Path),
		attribute.String("url.scheme", scheme),
	)
	if host := r.Host; host != "" {
		if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.HasSuffix(host, "]") {
			host = host[:i]
		}
		attrs = append(attrs, attribute.String("server.address", host))
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, attribute.String("user_agent.original", ua))
	}
	if r.ProtoMajor == 2 {
		attrs = append(attrs, attribute.String("network.protocol.version", "2"))
	} else if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
		attrs = append(attrs, attribute.String("network.protocol.version", "1.0"))
	} else {
		attrs = append(attrs, attribute.String("network.protocol.version", "1.1"))
	}
	return attrs
}

func endServerSpan(span trace.Span, method, route string, status int, p any) {
	if !span.IsRecording() {
		span.End()
		return
	}
	span.SetName(spanName(method, route))
	attrs := []attribute.KeyValue{attribute.Int("http.response.status_code", status)}
	if route != "" {
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
		err, ok := p.(error)
		if !ok {
			err = fmt.Errorf("%v", p)
		}
		span.RecordError(err, trace.WithStackTrace(true))
	case status >= 500:
		attrs = append(attrs, attribute.String("error.type", metrics.StatusLabel(status)))
		span.SetStatus(codes.Error, "")
	}
	span.SetAttributes(attrs...)
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
var spanNames sync.Map // spanNameKey -> string

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
	spanNames.Store(k, n)
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

type routeKey struct{}

type routeState struct{ route string }

// SetRoute reports the matched route template for the request whose context
// is ctx; router adapters (chi, gorilla/mux, an OpenAPI router) call it from
// inside the handler chain. It wins over the ServeMux pattern. It returns
// false when ctx does not come from observe's HTTP middleware.
//
// Pass a template ("/users/{id}"), never a raw path: every distinct value
// is a metric series (bounded by the series limit, past which it is _OTHER).
func SetRoute(ctx context.Context, route string) bool {
	rs, ok := ctx.Value(routeKey{}).(*routeState)
	if !ok {
		return false
	}
	rs.route = route
	return true
}

var errNoHijack = errors.New("observe: the underlying ResponseWriter does not support hijacking")
