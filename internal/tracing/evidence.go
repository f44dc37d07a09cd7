package tracing

import (
	"github.com/observekit/observe/internal/evidence"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// keepEvidence wraps the provider's sampler: while an anomaly is active on a
// route (internal/evidence), the route's new requests are sampled whatever
// the sampler says, and their traces remembered for the log sampler. With
// nothing listed it costs one atomic load. It reads the span's name and kind
// only, so an attribute-blind sampler stays attribute-blind.
type keepEvidence struct {
	sdktrace.Sampler
}

func (s keepEvidence) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	d := evidence.ForSpan(p.Name, p.Kind)
	if d == evidence.None {
		return s.Sampler.ShouldSample(p)
	}
	if d&evidence.Sample == 0 {
		evidence.MarkTrace(p.TraceID)
		return s.Sampler.ShouldSample(p)
	}
	res := s.Sampler.ShouldSample(p)
	if res.Decision != sdktrace.RecordAndSample {
		res.Decision = sdktrace.RecordAndSample
		if res.Tracestate.Len() == 0 {
			res.Tracestate = trace.SpanContextFromContext(p.ParentContext).TraceState()
		}
	}
	return res
}

// withEvidence wraps s in keepEvidence, keeping the attribute-blind marker.
func withEvidence(s sdktrace.Sampler) sdktrace.Sampler {
	switch v := s.(type) {
	case keepEvidence:
		return v
	case attributeBlindSampler:
		v.Sampler = keepEvidence{v.Sampler}
		return v
	}
	return keepEvidence{s}
}
