package tracing

import "go.opentelemetry.io/otel/trace"

// WrapTracers sends the spans started through Tracer() (observe's own
// middleware) through wrap, which receives the SDK provider, and returns the
// wrapped provider for the rest (observe installs it as otel's global).
// profiling.LinkSpans is such a wrap. Call it before the provider is made current.
func (p *Provider) WrapTracers(wrap func(trace.TracerProvider) trace.TracerProvider) trace.TracerProvider {
	api := wrap(p.tp)
	p.tracer = api.Tracer(InstrumentationName)
	return api
}
