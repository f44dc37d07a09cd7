// Package evidence is the process-wide list of routes whose evidence is kept
// while an anomaly on them is active (plus a tail): the trace sampler
// samples their new requests, and log sampling keeps their lines. The root
// package sets it from the anomaly detector; tracing and logging read it.
//
// When no route is listed, every check is one atomic load.
package evidence

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
)

// Route names a route the way the RED metrics do: Kind is http_server,
// rpc_server or rpc_client (http_client routes are server addresses, which
// a span's name does not carry: their traces are not forced), Route the
// http_route or rpc_method.
type Route struct {
	Kind  string
	Route string
}

// List is what is kept. Traces: sample the routes' new requests; Logs: keep
// their requests' log lines past log sampling.
type List struct {
	Traces, Logs bool
	Routes       []Route
}

type state struct {
	traces, logs bool
	server       map[string]bool // HTTP server routes and RPC server methods, by span name part
	client       map[string]bool // RPC client methods
}

var cur atomic.Pointer[state]

// Set replaces the list; an empty one (or neither Traces nor Logs) clears it.
func Set(l List) {
	if len(l.Routes) == 0 || (!l.Traces && !l.Logs) {
		cur.Store(nil)
		return
	}
	st := &state{traces: l.Traces, logs: l.Logs, server: map[string]bool{}, client: map[string]bool{}}
	for _, r := range l.Routes {
		switch r.Kind {
		case "http_server", "rpc_server":
			st.server[r.Route] = true
		case "rpc_client":
			st.client[r.Route] = true
		}
	}
	cur.Store(st)
}

// Active reports whether any route is listed.
func Active() bool { return cur.Load() != nil }

// Decision is what the sampler must do for a span.
type Decision uint8

// Decisions.
const (
	None   Decision = 0
	Sample Decision = 1 // sample the span (Traces)
	Mark   Decision = 2 // remember its trace for the log sampler (Logs)
)

// ForSpan tells whether a span starting with this name and kind belongs to
// a listed route: an HTTP server span named "{METHOD} {route}", an RPC span
// named after its method. A span named before its route is known (a bare
// method) does not match; the HTTP middleware matches its ServeMux early
// while anything is listed, for this.
func ForSpan(name string, kind trace.SpanKind) Decision {
	st := cur.Load()
	if st == nil {
		return None
	}
	var hit bool
	switch kind {
	case trace.SpanKindServer:
		hit = st.server[name]
		if !hit {
			if i := strings.IndexByte(name, ' '); i > 0 {
				hit = st.server[name[i+1:]]
			}
		}
	case trace.SpanKindClient:
		hit = st.client[name]
	}
	if !hit {
		return None
	}
	var d Decision
	if st.traces {
		d |= Sample
	}
	if st.logs {
		d |= Mark
	}
	return d
}

// maxMarked bounds the traces remembered for the log sampler; the oldest
// are forgotten first, and counted.
const maxMarked = 4096

var marked = struct {
	sync.Mutex
	set       map[trace.TraceID]struct{}
	ring      [maxMarked]trace.TraceID
	next      int
	forgotten uint64
}{set: map[trace.TraceID]struct{}{}}

// MarkTrace remembers id as a trace whose log lines are kept.
func MarkTrace(id trace.TraceID) {
	marked.Lock()
	defer marked.Unlock()
	if _, ok := marked.set[id]; ok {
		return
	}
	old := marked.ring[marked.next]
	if old.IsValid() {
		delete(marked.set, old)
		marked.forgotten++
	}
	marked.ring[marked.next] = id
	marked.next = (marked.next + 1) % maxMarked
	marked.set[id] = struct{}{}
}

// LogsKept reports whether the log lines of trace id are kept past log
// sampling: a listed route's request, while Logs is on.
func LogsKept(id trace.TraceID) bool {
	st := cur.Load()
	if st == nil || !st.logs || !id.IsValid() {
		return false
	}
	marked.Lock()
	_, ok := marked.set[id]
	marked.Unlock()
	return ok
}

// Forgotten reports how many marked traces were forgotten at the bound.
func Forgotten() uint64 {
	marked.Lock()
	defer marked.Unlock()
	return marked.forgotten
}

type keepLinesKey struct{}

// KeepLines returns ctx marked so that log lines written with it pass log
// sampling: the anomaly detector's own INFO lines (an anomaly ended) must
// not be sampled away.
func KeepLines(ctx context.Context) context.Context {
	return context.WithValue(ctx, keepLinesKey{}, true)
}

// LinesKept reports whether ctx was marked by KeepLines.
func LinesKept(ctx context.Context) bool {
	return ctx != nil && ctx.Value(keepLinesKey{}) != nil
}
