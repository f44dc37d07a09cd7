package tracing

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func stubSpan(tid, sid int, parent int, name string, start time.Time, d time.Duration, attrs ...attribute.KeyValue) sdktrace.ReadOnlySpan {
	var t trace.TraceID
	t[0], t[1], t[15] = byte(tid>>8), byte(tid), 1
	mk := func(s int) trace.SpanID { return trace.SpanID{byte(s >> 8), byte(s), 1} }
	st := tracetest.SpanStub{
		Name:        name,
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: t, SpanID: mk(sid), TraceFlags: trace.FlagsSampled}),
		StartTime:   start,
		EndTime:     start.Add(d),
		Attributes:  attrs,
		SpanKind:    trace.SpanKindServer,
	}
	if parent != 0 {
		st.Parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: t, SpanID: mk(parent), TraceFlags: trace.FlagsSampled})
		st.SpanKind = trace.SpanKindInternal
	}
	return st.Snapshot()
}

func traceID(tid int) trace.TraceID {
	var t trace.TraceID
	t[0], t[1], t[15] = byte(tid>>8), byte(tid), 1
	return t
}

// The index against a model: after any number of wraps, Trace returns
// exactly the held spans of the trace, in order; evictions are counted;
// a trace whose spans are all gone leaves no index entry.
func TestSpanStoreIndexMatchesAModel(t *testing.T) {
	for _, size := range []int{1, 7, 64} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s := newSpanStore(size)
			var all []sdktrace.ReadOnlySpan
			t0 := time.Now()
			for i := range 1000 {
				sp := stubSpan(i%17, i+1, 0, fmt.Sprint("s", i), t0.Add(time.Duration(i)), time.Millisecond)
				s.OnEnd(sp)
				all = append(all, sp)
			}
			held := all[len(all)-size:]
			st := s.Stats()
			if st.Spans != size || st.Evicted != uint64(1000-size) || st.Total != 1000 {
				t.Fatalf("stats %+v", st)
			}
			traces := 0
			for tid := range 17 {
				var want []string
				for _, sp := range held {
					if sp.SpanContext().TraceID() == traceID(tid) {
						want = append(want, sp.Name())
					}
				}
				var got []string
				for _, sp := range s.Trace(traceID(tid)) {
					got = append(got, sp.Name())
				}
				if !slices.Equal(got, want) {
					t.Fatalf("trace %d: %q, want %q", tid, got, want)
				}
				if len(want) > 0 {
					traces++
				}
			}
			if st.Traces != traces {
				t.Fatalf("index holds %d traces, want %d", st.Traces, traces)
			}
		})
	}
}

func TestSpanStoreSummariesAndFilters(t *testing.T) {
	s := newSpanStore(100)
	t0 := time.Now()
	add := func(tid int, route string, code int64, d time.Duration, errSpan bool) {
		s.OnEnd(stubSpan(tid, tid*10+2, tid*10+1, "child", t0.Add(time.Duration(tid)*time.Second+time.Millisecond), d/2))
		sp := stubSpan(tid, tid*10+1, 0, "GET "+route, t0.Add(time.Duration(tid)*time.Second), d,
			attribute.String("http.route", route), attribute.Int64("http.response.status_code", code))
		if errSpan {
			st := tracetest.SpanStubFromReadOnlySpan(sp)
			st.Status = sdktrace.Status{Code: codes.Error, Description: "boom"}
			sp = st.Snapshot()
		}
		s.OnEnd(sp)
	}
	add(1, "/a", 200, 10*time.Millisecond, false)
	add(2, "/a", 503, 300*time.Millisecond, true)
	add(3, "/b", 404, 20*time.Millisecond, false)
	add(4, "/b", 200, 900*time.Millisecond, false)

	all := s.Summaries(TraceFilter{})
	if len(all) != 4 || all[0].TraceID != traceID(4).String() || all[3].TraceID != traceID(1).String() {
		t.Fatalf("newest first: %+v", all)
	}
	if a := all[2]; a.Route != "/a" || a.Status != "503" || !a.Error || a.Spans != 2 || a.Name != "GET /a" || a.Kind != "server" || a.Duration < 299 {
		t.Fatalf("summary of trace 2: %+v", a)
	}
	for _, tc := range []struct {
		f    TraceFilter
		want []int
	}{
		{TraceFilter{Route: "/a"}, []int{2, 1}},
		{TraceFilter{ErrorsOnly: true}, []int{2}},
		{TraceFilter{Status: "5xx"}, []int{2}},
		{TraceFilter{Status: "4xx"}, []int{3}},
		{TraceFilter{Status: "200"}, []int{4, 1}},
		{TraceFilter{Status: "error"}, []int{2}},
		{TraceFilter{MinDuration: 250 * time.Millisecond}, []int{4, 2}},
		{TraceFilter{Route: "/b", MinDuration: 250 * time.Millisecond}, []int{4}},
		{TraceFilter{Limit: 1}, []int{4}},
	} {
		var got []int
		for _, sum := range s.Summaries(tc.f) {
			for i := 1; i <= 4; i++ {
				if sum.TraceID == traceID(i).String() {
					got = append(got, i)
				}
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v: traces %v, want %v", tc.f, got, tc.want)
		}
	}
}

// OnEnd allocates nothing for a span of a trace the store already holds.
func TestSpanStoreOnEndAllocations(t *testing.T) {
	s := newSpanStore(64)
	sp := stubSpan(1, 1, 0, "x", time.Now(), time.Millisecond)
	s.OnEnd(sp)
	if n := testing.AllocsPerRun(1000, func() { s.OnEnd(sp) }); n != 0 {
		t.Fatalf("OnEnd allocates %v times", n)
	}
}
