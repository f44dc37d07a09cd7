package tracing

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// SpanStore keeps the most recent finished sampled spans in memory, bounded,
// oldest overwritten first (and counted in Evicted), indexed by trace ID.
// It is a SpanProcessor; its OnEnd costs one short critical section and
// allocates only when a span starts a trace the store does not hold yet
// (one map entry, removed with the trace's last span).
type SpanStore struct {
	mu      sync.Mutex
	ring    []storedSpan
	next    int
	full    bool
	total   uint64 // spans ever stored; also the next span's sequence number + 1
	evicted uint64
	// head is each held trace's newest span, by sequence number; a span's
	// prev chains to the trace's previous one. The chain ends at a sequence
	// number older than the oldest span held.
	head map[trace.TraceID]uint64

	redactor Redactor // applied on read, off the request path
}

type storedSpan struct {
	sp   sdktrace.ReadOnlySpan
	seq  uint64 // 1-based
	prev uint64 // 0: none
}

// newSpanStore returns a store holding up to size spans.
func newSpanStore(size int) *SpanStore {
	if size <= 0 {
		size = 1
	}
	return &SpanStore{ring: make([]storedSpan, size), head: make(map[trace.TraceID]uint64)}
}

// OnStart implements sdktrace.SpanProcessor.
func (s *SpanStore) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd implements sdktrace.SpanProcessor.
func (s *SpanStore) OnEnd(sp sdktrace.ReadOnlySpan) {
	sc := sp.SpanContext()
	if !sc.IsSampled() {
		return
	}
	tid := sc.TraceID()
	s.mu.Lock()
	slot := &s.ring[s.next]
	if old := slot.sp; old != nil {
		s.evicted++
		// The oldest span held is the oldest of its trace: the trace is
		// gone when it was also the newest.
		otid := old.SpanContext().TraceID()
		if s.head[otid] == slot.seq {
			delete(s.head, otid)
		}
	}
	s.total++
	slot.sp, slot.seq, slot.prev = sp, s.total, s.head[tid]
	s.head[tid] = s.total
	s.next++
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
	add := func(ring []storedSpan) {
		for _, st := range ring {
			out = append(out, st.sp)
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

// oldestSeq is the sequence number of the oldest span held. Callers hold mu.
func (s *SpanStore) oldestSeq() uint64 {
	if s.total <= uint64(len(s.ring)) {
		return 1
	}
	return s.total - uint64(len(s.ring)) + 1
}

// traceLocked returns one trace's spans, newest first. Callers hold mu.
func (s *SpanStore) traceLocked(id trace.TraceID, out []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	oldest := s.oldestSeq()
	n := uint64(len(s.ring))
	for seq := s.head[id]; seq >= oldest && seq != 0; {
		st := &s.ring[(seq-1)%n]
		if st.seq != seq || st.sp.SpanContext().TraceID() != id {
			break
		}
		out = append(out, st.sp)
		seq = st.prev
	}
	return out
}

// Trace returns the stored spans of one trace, oldest first, redacted like
// exported spans are; nil when the store holds none of it.
func (s *SpanStore) Trace(id trace.TraceID) []sdktrace.ReadOnlySpan {
	s.mu.Lock()
	out := s.traceLocked(id, nil)
	s.mu.Unlock()
	slices.Reverse(out)
	for i, sp := range out {
		out[i] = redactSpan(s.redactor, sp)
	}
	return out
}

// spanTotal reports how many spans were ever stored.
func (s *SpanStore) spanTotal() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// StoreStats describes what a SpanStore holds and has evicted.
type StoreStats struct {
	Capacity int    `json:"capacity"` // spans it can hold
	Spans    int    `json:"spans"`    // spans held
	Traces   int    `json:"traces"`   // traces with at least one span held
	Total    uint64 `json:"total"`    // spans ever stored
	Evicted  uint64 `json:"evicted"`  // spans overwritten by newer ones
}

// Stats reports what the store holds and has evicted.
func (s *SpanStore) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := s.next
	if s.full {
		held = len(s.ring)
	}
	return StoreStats{Capacity: len(s.ring), Spans: held, Traces: len(s.head), Total: s.total, Evicted: s.evicted}
}

// TraceFilter selects trace summaries. The zero value selects every trace.
type TraceFilter struct {
	Route       string        // the root span's route (http.route, else rpc.method), exact
	Status      string        // the root's status: an HTTP code ("503"), a class ("5xx"), a gRPC code name ("NOT_FOUND"), or "error", "ok", "unset"
	ErrorsOnly  bool          // only traces with a span in error
	MinDuration time.Duration // only traces at least this long
	Limit       int           // at most this many, newest first (0: 100)
}

// TraceSummary describes one stored trace.
type TraceSummary struct {
	TraceID  string    `json:"trace_id"`
	Name     string    `json:"name"`   // the root span's name
	Route    string    `json:"route"`  // http.route or rpc.method of the root, "" when none
	Kind     string    `json:"kind"`   // the root's kind: server, client, internal…
	Status   string    `json:"status"` // HTTP status code, gRPC code name, else ok/error/unset
	Error    bool      `json:"error"`  // a span of the trace is in error
	Start    time.Time `json:"start"`
	Duration float64   `json:"duration_ms"`
	Spans    int       `json:"spans"` // spans held (older ones may have been evicted)
	Service  string    `json:"service"`
}

// Summaries returns the summaries of the stored traces that match f,
// newest first. Names and routes are redacted like exported spans.
func (s *SpanStore) Summaries(f TraceFilter) []TraceSummary {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var buf []sdktrace.ReadOnlySpan
	var out []TraceSummary
	s.mu.Lock()
	for id := range s.head {
		buf = s.traceLocked(id, buf[:0])
		if len(buf) == 0 {
			continue
		}
		sum, root := summarize(id, buf)
		if !f.matches(&sum, root) {
			continue
		}
		out = append(out, sum)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b TraceSummary) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.TraceID, b.TraceID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	for i := range out {
		if s.redactor != nil {
			out[i].Name = s.redactor.String(out[i].Name)
			out[i].Route = s.redactor.String(out[i].Route)
		}
	}
	return out
}

func (f *TraceFilter) matches(sum *TraceSummary, root sdktrace.ReadOnlySpan) bool {
	if f.Route != "" && sum.Route != f.Route {
		return false
	}
	if f.ErrorsOnly && !sum.Error {
		return false
	}
	if f.MinDuration > 0 && time.Duration(sum.Duration*float64(time.Millisecond)) < f.MinDuration {
		return false
	}
	if f.Status == "" {
		return true
	}
	switch f.Status {
	case "error":
		return root.Status().Code == codes.Error
	case "ok":
		return root.Status().Code != codes.Error
	case "unset":
		return root.Status().Code == codes.Unset
	}
	if len(f.Status) == 3 && f.Status[1:] == "xx" {
		return len(sum.Status) == 3 && sum.Status[0] == f.Status[0] && sum.Status[1] >= '0' && sum.Status[1] <= '9'
	}
	return sum.Status == f.Status
}

// summarize describes one trace from its spans (newest first) and returns
// its root: the span without a parent in this process, else the earliest.
func summarize(id trace.TraceID, spans []sdktrace.ReadOnlySpan) (TraceSummary, sdktrace.ReadOnlySpan) {
	var root sdktrace.ReadOnlySpan
	var start, end time.Time
	sum := TraceSummary{TraceID: id.String(), Spans: len(spans)}
	for _, sp := range spans {
		if start.IsZero() || sp.StartTime().Before(start) {
			start = sp.StartTime()
		}
		if sp.EndTime().After(end) {
			end = sp.EndTime()
		}
		if sp.Status().Code == codes.Error {
			sum.Error = true
		}
		// The earliest local root, else the earliest span.
		if root == nil || rootLike(sp) && !rootLike(root) ||
			rootLike(sp) == rootLike(root) && sp.StartTime().Before(root.StartTime()) {
			root = sp
		}
	}
	sum.Start = start
	sum.Duration = float64(end.Sub(start)) / float64(time.Millisecond)
	sum.Name = root.Name()
	sum.Kind = root.SpanKind().String()
	if r := root.Resource(); r != nil {
		if v, ok := r.Set().Value("service.name"); ok {
			sum.Service = v.AsString()
		}
	}
	var httpCode, rpcCode string
	for _, kv := range root.Attributes() {
		switch kv.Key {
		case "http.route":
			sum.Route = kv.Value.Emit()
		case "rpc.method":
			if sum.Route == "" {
				sum.Route = kv.Value.Emit()
			}
		case "http.response.status_code", "http.status_code":
			httpCode = kv.Value.Emit()
		case "rpc.grpc.status_code":
			if kv.Value.Type() == attribute.INT64 {
				rpcCode = grpcCodeName(kv.Value.AsInt64())
			}
		case "rpc.response.status_code":
			rpcCode = kv.Value.Emit()
		}
	}
	switch {
	case httpCode != "":
		sum.Status = httpCode
	case rpcCode != "":
		sum.Status = rpcCode
	case root.Status().Code == codes.Error:
		sum.Status = "error"
	case root.Status().Code == codes.Ok:
		sum.Status = "ok"
	default:
		sum.Status = "unset"
	}
	return sum, root
}

func rootLike(sp sdktrace.ReadOnlySpan) bool {
	return !sp.Parent().IsValid() || sp.Parent().IsRemote()
}

var grpcCodeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

func grpcCodeName(c int64) string {
	if c >= 0 && c < int64(len(grpcCodeNames)) {
		return grpcCodeNames[c]
	}
	return strconv.FormatInt(c, 10)
}
