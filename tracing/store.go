package tracing

import (
	"context"
	"sync"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// SpanStore keeps the most recent finished sampled spans in memory, bounded,
// oldest overwritten first. It is a SpanProcessor; its OnEnd costs one short
// critical section and no allocation.
type SpanStore struct {
	mu    sync.Mutex
	ring  []sdktrace.ReadOnlySpan
	next  int
	full  bool
	total uint64

	redactor Redactor // applied on read, off the request path
}

// NewSpanStore returns a store holding up to size spans.
func NewSpanStore(size int) *SpanStore {
	if size <= 0 {
		size = 1
	}
	return &SpanStore{ring: make([]sdktrace.ReadOnlySpan, size)}
}

// OnStart implements sdktrace.SpanProcessor.
func (s *SpanStore) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd implements sdktrace.SpanProcessor.
func (s *SpanStore) OnEnd(sp sdktrace.ReadOnlySpan) {
	if !sp.SpanContext().IsSampled() {
		return
	}
	s.mu.Lock()
	s.ring[s.next] = sp
	s.next++
	s.total++
	if s.next == len(s.ring) {
		s.next = 0
		s.full = true
	}
	s.mu.Unlock()
}

// Shutdown implements sdktrace.SpanProcessor.
func (s *SpanStore) Shutdown(context.Context) error { return nil }

// ForceFlush implements sdktrace.SpanProcessor.
func (s *SpanStore) ForceFlush(context.Context) error { return nil }

// Spans returns the stored spans, oldest first, redacted like exported
// spans are.
func (s *SpanStore) Spans() []sdktrace.ReadOnlySpan {
	s.mu.Lock()
	var out []sdktrace.ReadOnlySpan
	if s.full {
		out = append(out, s.ring[s.next:]...)
	}
	out = append(out, s.ring[:s.next]...)
	s.mu.Unlock()
	for i, sp := range out {
		out[i] = redactSpan(s.redactor, sp)
	}
	return out
}

// Trace returns the stored spans of one trace, oldest first.
func (s *SpanStore) Trace(id trace.TraceID) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	s.mu.Lock()
	add := func(spans []sdktrace.ReadOnlySpan) {
		for _, sp := range spans {
			if sp != nil && sp.SpanContext().TraceID() == id {
				out = append(out, sp)
			}
		}
	}
	if s.full {
		add(s.ring[s.next:])
	}
	add(s.ring[:s.next])
	s.mu.Unlock()
	for i, sp := range out {
		out[i] = redactSpan(s.redactor, sp)
	}
	return out
}

// Total reports how many spans were ever stored.
func (s *SpanStore) Total() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}
