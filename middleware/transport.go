package middleware

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/observekit/observe/internal/metrics"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Transport wraps base (nil: http.DefaultTransport) so every request gets a
// client span and http_client_request_duration_seconds, and carries the
// trace context to the server (the propagators of observe.Init:
// traceparent/tracestate, baggage, b3…).
//
// The span is named "{METHOD}", is of kind client, and carries
// http.request.method, server.address, server.port and url.full (user info
// and sensitive query values redacted), then http.response.status_code. A
// transport failure (refused, reset, timeout, cancellation) or a status of
// 400 or more sets the span's status to error with error.type.
//
// The span ends when the response body has been read to its end or closed,
// when reading it fails, or when the request's context is done, whichever
// comes first, so http.Client timeouts and cancellation never leave it
// open. The duration metric is recorded when the response headers arrive.
//
// The caller's request is never modified: the trace headers go on a copy.
func Transport(base http.RoundTripper, opts ...Option) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{base: base, opts: buildOptions(opts)}
}

type transport struct {
	base http.RoundTripper
	opts options
}

var (
	clientKind = trace.WithSpanKind(trace.SpanKindClient)
	clientOnly = []trace.SpanStartOption{clientKind} // see serverOnly
)

// Unwrap returns the wrapped RoundTripper.
func (t *transport) Unwrap() http.RoundTripper { return t.base }

// CloseIdleConnections closes the base transport's idle connections, so
// http.Client.CloseIdleConnections still works through the wrapper.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	tp, m := t.opts.instruments()
	if (tp == nil && m == nil) || (t.opts.filter != nil && !keepRequest(t.opts.filter, req)) {
		return t.base.RoundTrip(req)
	}
	start := time.Now()
	ctx := req.Context()
	host, port := serverHostPort(req.URL, req.Host)

	var span trace.Span
	var held *[]attribute.KeyValue // start attributes held for the end, or nil
	if tp != nil {
		if tp.StartAttributesObserved() {
			ap := attrPool.Get().(*[]attribute.KeyValue)
			attrs := t.startAttrs((*ap)[:0], req, host, port)
			ctx, span = tp.Tracer().Start(ctx, methodName(req.Method), clientKind, trace.WithAttributes(attrs...))
			releaseAttrs(ap, attrs)
		} else {
			// See HTTP: handed over at the end, in one copy.
			ctx, span = tp.Tracer().Start(ctx, methodName(req.Method), clientOnly...)
			if span.IsRecording() {
				held = attrPool.Get().(*[]attribute.KeyValue)
				*held = t.startAttrs((*held)[:0], req, host, port)
			}
		}
	} else {
		span = trace.SpanFromContext(ctx)
	}

	// A shallow copy with its own header map: the caller's request is not
	// ours to change. Room for the propagation headers is made up front.
	r2 := req.WithContext(ctx)
	r2.Header = cloneHeader(req.Header, 4)
	otel.GetTextMapPropagator().Inject(ctx, headerCarrier(r2.Header))

	resp, err := t.base.RoundTrip(r2)
	d := time.Since(start)
	if err != nil {
		if m != nil {
			m.HTTPClient.ObserveWithSizes(req.Method, host, 0, d, req.ContentLength, -1, span.SpanContext())
		}
		if span.IsRecording() {
			rerr := err
			if ctxErr := contextEnded(r2.Context()); ctxErr != nil {
				// http.Client's timeout also closes Request.Cancel, whose
				// error ("request canceled") says less than the context's.
				rerr = &ctxError{err: err, ctx: ctxErr}
			}
			ap := takeAttrs(held)
			attrs := append(*ap, attribute.String("error.type", transportErrorType(rerr)))
			span.SetAttributes(attrs...)
			releaseAttrs(ap, attrs)
			span.RecordError(rerr)
			span.SetStatus(codes.Error, rerr.Error())
		}
		span.End()
		return resp, err
	}
	if m != nil {
		m.HTTPClient.ObserveWithSizes(req.Method, host, resp.StatusCode, d, req.ContentLength, resp.ContentLength, span.SpanContext())
	}
	if !span.IsRecording() {
		span.End()
		return resp, nil
	}
	ap := takeAttrs(held)
	attrs := append(*ap,
		attribute.Int("http.response.status_code", resp.StatusCode),
		attribute.String("network.protocol.version", protoVersion(resp.ProtoMajor, resp.ProtoMinor)),
	)
	if resp.StatusCode >= 400 {
		attrs = append(attrs, attribute.String("error.type", metrics.StatusLabel(resp.StatusCode)))
		span.SetStatus(codes.Error, "")
	}
	attrs = appendHeaders(attrs, resp.Header, t.opts.respHeaders)
	span.SetAttributes(attrs...)
	releaseAttrs(ap, attrs)

	if resp.Body == nil || resp.Body == http.NoBody || req.Method == http.MethodHead ||
		resp.StatusCode == http.StatusSwitchingProtocols {
		// Nothing to wait for; a 101's body is the connection itself and
		// must keep its io.Writer.
		span.End()
		return resp, nil
	}
	b := &tracedBody{rc: resp.Body, span: span, ctx: ctx}
	if ctx.Done() != nil {
		b.stop = context.AfterFunc(ctx, b.abandon)
	}
	resp.Body = b
	return resp, nil
}

// tracedBody ends the client span when the body is done with: read to EOF,
// failed, closed, or abandoned by a context that ended.
type tracedBody struct {
	rc    io.ReadCloser
	span  trace.Span
	ctx   context.Context
	stop  func() bool
	ended atomic.Bool
}

func (b *tracedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		if err == io.EOF {
			b.end(nil)
		} else {
			b.end(err)
		}
	}
	return n, err
}

func (b *tracedBody) Close() error {
	err := b.rc.Close()
	b.end(nil)
	return err
}

// abandon runs when the request's context ends before the body was done
// with: a timeout or cancellation while it was read, or a caller that never
// closed it. Either way the response was not consumed: an error.
func (b *tracedBody) abandon() {
	if !b.ended.CompareAndSwap(false, true) {
		return
	}
	err := b.ctx.Err()
	if err == nil {
		err = context.Canceled
	}
	b.span.SetAttributes(attribute.String("error.type", transportErrorType(err)))
	b.span.SetStatus(codes.Error, "context ended before the response body was read: "+err.Error())
	b.span.End()
}

func (b *tracedBody) end(err error) {
	if !b.ended.CompareAndSwap(false, true) {
		return
	}
	if b.stop != nil {
		b.stop()
	}
	if err != nil {
		if ctxErr := contextEnded(b.ctx); ctxErr != nil {
			err = &ctxError{err: err, ctx: ctxErr}
		}
		b.span.SetAttributes(attribute.String("error.type", transportErrorType(err)))
		b.span.RecordError(err)
		b.span.SetStatus(codes.Error, err.Error())
	}
	b.span.End()
}

// startAttrs appends the client span's attributes known before the request
// is sent.
func (t *transport) startAttrs(attrs []attribute.KeyValue, req *http.Request, host string, port int) []attribute.KeyValue {
	attrs = appendClientStartAttrs(attrs, req, host, port)
	return appendHeaders(attrs, req.Header, t.opts.reqHeaders)
}

// takeAttrs returns held, or a pooled empty slice when nothing is held.
func takeAttrs(held *[]attribute.KeyValue) *[]attribute.KeyValue {
	if held != nil {
		return held
	}
	return attrPool.Get().(*[]attribute.KeyValue)
}

// releaseAttrs returns attrs (grown from *ap) to the pool, emptied.
func releaseAttrs(ap *[]attribute.KeyValue, attrs []attribute.KeyValue) {
	clear(attrs)
	*ap = attrs[:0]
	attrPool.Put(ap)
}

func appendClientStartAttrs(attrs []attribute.KeyValue, req *http.Request, host string, port int) []attribute.KeyValue {
	method := metrics.MethodLabel(req.Method)
	attrs = append(attrs, attribute.String("http.request.method", method))
	if method == metrics.Other {
		attrs = append(attrs, attribute.String("http.request.method_original", truncate(req.Method, 64)))
	}
	if host != "" {
		attrs = append(attrs, attribute.String("server.address", host))
	}
	if port > 0 {
		attrs = append(attrs, attribute.Int("server.port", port))
	}
	return append(attrs, attribute.String("url.full", fullURL(req.URL)))
}

// fullURL is url.full: credentials never leave the process (the semantic
// conventions want them replaced); sensitive query values are masked by the
// redaction policy at export.
func fullURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	if u.User != nil {
		c := *u
		c.User = url.UserPassword("REDACTED", "REDACTED")
		return c.String()
	}
	return u.String()
}

// serverHostPort returns the host the request goes to, without port, and
// the port (the scheme's default when absent).
func serverHostPort(u *url.URL, hostHeader string) (string, int) {
	hp := ""
	if u != nil {
		hp = u.Host
	}
	if hp == "" {
		hp = hostHeader
	}
	host, port := splitHostPort(hp)
	if port == 0 && u != nil {
		switch u.Scheme {
		case "http":
			port = 80
		case "https":
			port = 443
		}
	}
	return host, port
}

// cloneHeader copies h into a new map with room for extra keys; the values
// share one backing array, as http.Header.Clone does.
func cloneHeader(h http.Header, extra int) http.Header {
	nv := 0
	for _, vv := range h {
		nv += len(vv)
	}
	sv := make([]string, nv)
	h2 := make(http.Header, len(h)+extra)
	for k, vv := range h {
		if vv == nil {
			h2[k] = nil
			continue
		}
		n := copy(sv, vv)
		h2[k] = sv[:n:n]
		sv = sv[n:]
	}
	return h2
}

// contextEnded returns ctx's error, or DeadlineExceeded when its deadline
// has passed but its timer has not fired yet (http.Client's timeout closes
// Request.Cancel on a timer of its own, which may win the race).
func contextEnded(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// ctxError is a transport error that happened because the request's
// context ended; it unwraps to both.
type ctxError struct {
	err error
	ctx error
}

func (e *ctxError) Error() string   { return e.err.Error() + " (" + e.ctx.Error() + ")" }
func (e *ctxError) Unwrap() []error { return []error{e.ctx, e.err} }

// transportErrorType is a low-cardinality error.type for a failed request:
// "timeout", "canceled", or the error's Go type.
func transportErrorType(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	for {
		u := errors.Unwrap(err)
		if u == nil {
			break
		}
		if _, wrapper := err.(*url.Error); !wrapper {
			break
		}
		err = u
	}
	return reflect.TypeOf(err).String()
}
