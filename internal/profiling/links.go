package profiling

import (
	"context"
	"runtime/pprof"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// pprof labels a sampled local root span puts on its goroutine, and the span
// attribute that points a trace view at the span's profile (Grafana's
// "span profiles" read exactly these names).
const (
	labelSpanID   = "span_id"
	LabelSpanName = "span_name"
	LabelEndpoint = "endpoint"

	ProfileIDAttribute = attribute.Key("pyroscope.profile.id")
)

// routeKey is the OTel semantic-convention attribute for the matched route.
const routeKey = attribute.Key("http.route")

// LinkSpans returns tp with span↔profile links. While a sampled local root
// span (one without a parent in this process; recorded, which includes the
// spans a tail sampler records before deciding) runs, the goroutine that
// started it carries the pprof labels
//
//	span_id    the span's ID (16 hex digits)
//	span_name  the span's name
//	endpoint   the route of an HTTP server span, the method of an RPC span
//
// merged over the labels already in the context passed to Start (those the
// application set with pprof.Do or pprof.WithLabels survive), and the span
// gets the attribute pyroscope.profile.id (its span ID) so that a trace view
// can open its flame graph. Goroutines the span's code starts inherit the
// labels. When the span ends, the goroutine's labels go back to those of the
// context passed to Start, as pprof.Do does.
//
// The endpoint comes from the http.route attribute given at start, or from a
// name following the HTTP convention "{METHOD} {route}"; an RPC span named
// "pkg.Service/Method" is its own endpoint. A raw URL path is never used: a
// span named after the bare method has no endpoint label until its route is
// known. SetName and SetAttributes(http.route) on the root span update the
// labels of the goroutine calling them (the one running the request, in
// server middleware).
//
// Child spans, unsampled spans and spans of other traces pass through
// untouched and cost nothing. The context returned for a linked span
// carries the labels (for pprof.Do) and the span itself, so that
// trace.SpanFromContext(ctx).End() restores the labels too. A root span
// should end on the goroutine that started it.
func LinkSpans(tp trace.TracerProvider) trace.TracerProvider {
	if tp == nil {
		return nil
	}
	if l, ok := tp.(*linkingProvider); ok {
		return l
	}
	return &linkingProvider{tp: tp}
}

type linkingProvider struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

func (p *linkingProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return &linkingTracer{tr: p.tp.Tracer(name, opts...), p: p}
}

type linkingTracer struct {
	embedded.Tracer
	tr trace.Tracer
	p  *linkingProvider
}

func (t *linkingTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent := trace.SpanContextFromContext(ctx)
	sctx, span := t.tr.Start(ctx, name, opts...)
	sc := span.SpanContext()
	// Recording, not only sampled: a tail sampler records every span and
	// decides at the end, and the traces it keeps need their profiles most.
	if !span.IsRecording() || (parent.IsValid() && !parent.IsRemote() && parent.TraceID() == sc.TraceID()) {
		return sctx, span // not a recorded local root
	}
	id := sc.SpanID().String()
	ls := &linkedSpan{Span: span, p: t.p, parent: ctx, id: id, name: name, endpoint: endpointOf(name)}
	ls.profileID[0] = ProfileIDAttribute.String(id)
	span.SetAttributes(ls.profileID[:]...) // in ls: no allocation of its own
	if ls.endpoint == "" && isBareMethod(name) {
		// The route may have been given as an attribute.
		cfg := trace.NewSpanStartConfig(opts...)
		if r := routeIn(cfg.Attributes()); r != "" {
			ls.endpoint, ls.fromRoute = r, true
		}
	}
	lctx := pprof.WithLabels(sctx, ls.labels())
	pprof.SetGoroutineLabels(lctx)
	return trace.ContextWithSpan(lctx, ls), ls
}

// linkedSpan is a sampled local root span: it restores the goroutine's
// labels when it ends and relabels when its name or route changes.
type linkedSpan struct {
	trace.Span
	p      *linkingProvider
	parent context.Context // the labels to restore
	id     string

	profileID [1]attribute.KeyValue

	mu        sync.Mutex
	name      string
	endpoint  string
	fromRoute bool // endpoint came from http.route, which wins over the name
	ended     bool
}

func (s *linkedSpan) labels() pprof.LabelSet {
	// Keys in sorted order: pprof.Labels takes its fast path.
	if s.endpoint == "" {
		return pprof.Labels(labelSpanID, s.id, LabelSpanName, s.name)
	}
	return pprof.Labels(LabelEndpoint, s.endpoint, labelSpanID, s.id, LabelSpanName, s.name)
}

// relabel applies the current labels to the calling goroutine. s.mu is held.
func (s *linkedSpan) relabel() {
	pprof.SetGoroutineLabels(pprof.WithLabels(s.parent, s.labels()))
}

func (s *linkedSpan) End(opts ...trace.SpanEndOption) {
	s.Span.End(opts...)
	s.mu.Lock()
	if !s.ended {
		s.ended = true
		pprof.SetGoroutineLabels(s.parent)
	}
	s.mu.Unlock()
}

func (s *linkedSpan) SetName(name string) {
	s.Span.SetName(name)
	s.mu.Lock()
	if !s.ended && name != s.name {
		s.name = name
		if !s.fromRoute {
			s.endpoint = endpointOf(name)
		}
		s.relabel()
	}
	s.mu.Unlock()
}

func (s *linkedSpan) SetAttributes(kv ...attribute.KeyValue) {
	s.Span.SetAttributes(kv...)
	r := routeIn(kv)
	if r == "" {
		return
	}
	s.mu.Lock()
	if !s.ended {
		s.fromRoute = true
		if r != s.endpoint {
			s.endpoint = r
			s.relabel()
		}
	}
	s.mu.Unlock()
}

func (s *linkedSpan) TracerProvider() trace.TracerProvider { return s.p }

func routeIn(kvs []attribute.KeyValue) string {
	for _, kv := range kvs {
		if kv.Key == routeKey && kv.Value.Type() == attribute.STRING {
			return kv.Value.AsString()
		}
	}
	return ""
}

// endpointOf derives the endpoint from a span name that follows the OTel
// conventions: "{METHOD} {route}" for HTTP servers (the route), and
// "pkg.Service/Method" for RPC (the whole name). Anything else, a bare
// method, or what could be a raw path, has no endpoint.
func endpointOf(name string) string {
	if i := strings.IndexByte(name, ' '); i > 0 {
		if route := name[i+1:]; isMethod(name[:i]) && strings.HasPrefix(route, "/") {
			return route
		}
		return ""
	}
	if j := strings.IndexByte(name, '/'); j > 0 && j < len(name)-1 && strings.IndexByte(name[:j], '.') >= 0 && strings.IndexByte(name[j+1:], '/') < 0 {
		return name // pkg.Service/Method
	}
	return ""
}

// isBareMethod reports a server span named before its route was known.
func isBareMethod(name string) bool { return isMethod(name) || name == "HTTP" }

func isMethod(s string) bool {
	switch s {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "_OTHER":
		return true
	}
	return false
}
