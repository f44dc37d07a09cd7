package tracing_test

import (
	"context"
	"crypto/rand"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/observekit/observe/internal/tracing"
	"github.com/observekit/observe/internal/wiring"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// tailRecorder is an exporter that keeps what it is given, optionally
// taking its time.
type tailRecorder struct {
	delay time.Duration
	mu    sync.Mutex
	spans []sdktrace.ReadOnlySpan
}

func (r *tailRecorder) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, spans...)
	r.mu.Unlock()
	return nil
}

func (r *tailRecorder) Shutdown(context.Context) error { return nil }

// byTrace groups the exported spans by trace id.
func (r *tailRecorder) byTrace() map[trace.TraceID][]sdktrace.ReadOnlySpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[trace.TraceID][]sdktrace.ReadOnlySpan{}
	for _, s := range r.spans {
		out[s.SpanContext().TraceID()] = append(out[s.SpanContext().TraceID()], s)
	}
	return out
}

// newTailProvider is a Provider with tail sampling exporting to rec.
func newTailProvider(t testing.TB, cfg tracing.TailConfig, rec *tailRecorder, batch tracing.BatchConfig) *tracing.Provider {
	t.Helper()
	if batch.MaxQueueSize == 0 {
		batch.MaxQueueSize = 1 << 16
	}
	if batch.ScheduleDelay == 0 {
		batch.ScheduleDelay = 10 * time.Millisecond
	}
	p, err := tracing.New(context.Background(), tracing.Config{
		Exporter:     "custom",
		SpanExporter: rec,
		Tail:         &cfg,
		Batch:        batch,
		StoreSize:    1 << 16,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return p
}

func flush(t testing.TB, p *tracing.Provider) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
}

// request is one simulated request: a local root (continuing parent when
// valid) with three children, of the given duration and outcome. Time is
// given explicitly, so nothing sleeps.
type request struct {
	failing, slow bool
	dur           time.Duration
}

const childrenPerRequest = 3

func (rq request) run(tr trace.Tracer, parent context.Context, name string, at time.Time) (trace.SpanContext, context.Context) {
	ctx, root := tr.Start(parent, name, trace.WithTimestamp(at), trace.WithSpanKind(trace.SpanKindServer))
	step := rq.dur / (childrenPerRequest + 1)
	for c := 0; c < childrenPerRequest; c++ {
		_, child := tr.Start(ctx, "child", trace.WithTimestamp(at.Add(time.Duration(c)*step)))
		child.End(trace.WithTimestamp(at.Add(time.Duration(c+1) * step)))
	}
	if rq.failing {
		root.SetStatus(codes.Error, "boom")
	}
	root.End(trace.WithTimestamp(at.Add(rq.dur)))
	return root.SpanContext(), ctx
}

// mix is the 10,000-request traffic: 1% failing, 1% slow, the rest normal
// (1–5 ms).
func mix(i int) request {
	rq := request{dur: time.Millisecond + time.Duration(i%4000)*time.Microsecond}
	switch i % 100 {
	case 7:
		rq.failing = true
	case 42:
		rq.slow = true
		rq.dur = 500*time.Millisecond + time.Duration(i)*time.Microsecond
	}
	return rq
}

// ratioSampled is the SDK's own TraceIDRatioBased decision for id.
func ratioSampled(ratio float64, id trace.TraceID) bool {
	r := sdktrace.TraceIDRatioBased(ratio).ShouldSample(sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: id})
	return r.Decision == sdktrace.RecordAndSample
}

// TestTail10000Requests is the proof: 10,000 requests, 1% failing and
// 1% slow. Every failing and every slow trace is exported whole, normal
// traces are kept exactly when TraceIDRatioBased at the baseline would keep
// them, and their number is within statistical bounds of the baseline.
func TestTail10000Requests(t *testing.T) {
	const n, baseline = 10000, 0.05
	rec := &tailRecorder{}
	p := newTailProvider(t, tracing.TailConfig{Baseline: baseline, Latency: 100 * time.Millisecond}, rec, tracing.BatchConfig{})
	tr := p.Tracer()

	kinds := map[trace.TraceID]request{}
	start := time.Now()
	for i := 0; i < n; i++ {
		rq := mix(i)
		sc, _ := rq.run(tr, context.Background(), "GET /items/{id}", start.Add(time.Duration(i)*time.Millisecond))
		kinds[sc.TraceID()] = rq
	}
	flush(t, p)

	got := rec.byTrace()
	var failing, slow, normal, normalKept, tentativeFailing, tentativeSlow int
	for id, rq := range kinds {
		if !ratioSampled(baseline, id) {
			if rq.failing {
				tentativeFailing++
			} else if rq.slow {
				tentativeSlow++
			}
		}
		spans := got[id]
		kept := len(spans) > 0
		if kept {
			checkWhole(t, id, spans, childrenPerRequest+1)
		}
		switch {
		case rq.failing:
			failing++
			if !kept {
				t.Errorf("failing trace %s not exported", id)
			}
		case rq.slow:
			slow++
			if !kept {
				t.Errorf("slow trace %s not exported", id)
			}
		default:
			normal++
			if kept {
				normalKept++
			}
			if want := ratioSampled(baseline, id); kept != want {
				t.Errorf("normal trace %s: kept=%v, TraceIDRatioBased(%g) says %v", id, kept, baseline, want)
			}
		}
	}
	if failing != 100 || slow != 100 {
		t.Fatalf("traffic: %d failing, %d slow", failing, slow)
	}
	// Binomial: mean n·p, sd √(n·p·(1-p)); five sd is a false alarm in
	// about one run in two million.
	mean := float64(normal) * baseline
	sd := math.Sqrt(mean * (1 - baseline))
	if d := math.Abs(float64(normalKept) - mean); d > 5*sd {
		t.Errorf("baseline kept %d of %d normal traces, want %.0f ± %.0f", normalKept, normal, mean, 5*sd)
	}
	st := p.Tail().Stats()
	if st.KeptError != uint64(tentativeFailing) || st.KeptSlow != uint64(tentativeSlow) || st.BufferedSpans != 0 || st.BufferedTraces != 0 || st.EvictedSpans != 0 {
		t.Errorf("stats: %+v", st)
	}
	// The in-process store holds kept spans only.
	for _, s := range p.Store().Spans() {
		if len(got[s.SpanContext().TraceID()]) == 0 {
			t.Fatalf("store holds span %s of a dropped trace", s.Name())
		}
	}
	t.Logf("kept %d traces of %d: %d failing, %d slow, %d of %d normal (baseline %.0f ± %.0f)",
		len(got), n, failing, slow, normalKept, normal, mean, sd)
}

// checkWhole checks spans are one whole local trace: want spans, one root,
// every other span's parent among them, all marked sampled.
func checkWhole(t *testing.T, id trace.TraceID, spans []sdktrace.ReadOnlySpan, want int) {
	t.Helper()
	if len(spans) != want {
		t.Errorf("trace %s exported with %d spans, want %d", id, len(spans), want)
		return
	}
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext().SpanID()] = true
		if !s.SpanContext().IsSampled() {
			t.Errorf("trace %s: exported span %s not marked sampled", id, s.Name())
		}
	}
	roots := 0
	for _, s := range spans {
		if !ids[s.Parent().SpanID()] {
			roots++
		}
	}
	if roots != 1 {
		t.Errorf("trace %s: %d roots among exported spans, want 1", id, roots)
	}
}

// TestTailTwoServicesAgree: service A calls service B for every request.
// B (tail sampling too) keeps what A kept in its baseline, as A propagates
// it sampled; and C, told nothing (every call arrives unsampled, as from a
// service without observe), keeps exactly the same normal traces. A trace
// only A found failing is kept by A; B decides on its own view.
func TestTailTwoServicesAgree(t *testing.T) {
	const n, baseline = 10000, 0.02
	recA, recB, recC := &tailRecorder{}, &tailRecorder{}, &tailRecorder{}
	cfg := tracing.TailConfig{Baseline: baseline, Latency: 100 * time.Millisecond}
	a := newTailProvider(t, cfg, recA, tracing.BatchConfig{})
	b := newTailProvider(t, cfg, recB, tracing.BatchConfig{})
	c := newTailProvider(t, cfg, recC, tracing.BatchConfig{})
	prop := propagation.TraceContext{}

	kinds := map[trace.TraceID]request{}
	start := time.Now()
	for i := 0; i < n; i++ {
		rq := mix(i)
		at := start.Add(time.Duration(i) * time.Millisecond)
		ctxA, rootA := a.Tracer().Start(context.Background(), "GET /checkout", trace.WithTimestamp(at))
		carrier := propagation.MapCarrier{}
		prop.Inject(ctxA, carrier)
		// B: a normal call, whatever A's outcome.
		request{dur: 2 * time.Millisecond}.run(b.Tracer(), prop.Extract(context.Background(), carrier), "POST /reserve", at)
		// C: the same trace arriving unsampled.
		carrier["traceparent"] = carrier["traceparent"][:len(carrier["traceparent"])-2] + "00"
		request{dur: 2 * time.Millisecond}.run(c.Tracer(), prop.Extract(context.Background(), carrier), "POST /reserve", at)
		if rq.failing {
			rootA.SetStatus(codes.Error, "boom")
		}
		rootA.End(trace.WithTimestamp(at.Add(rq.dur)))
		kinds[rootA.SpanContext().TraceID()] = rq
	}
	flush(t, a)
	flush(t, b)
	flush(t, c)
	gotA, gotB, gotC := recA.byTrace(), recB.byTrace(), recC.byTrace()

	var normalA, agreeing int
	for id, rq := range kinds {
		inA, inB, inC := len(gotA[id]) > 0, len(gotB[id]) > 0, len(gotC[id]) > 0
		if rq.failing || rq.slow {
			if !inA {
				t.Errorf("A dropped its own failing/slow trace %s", id)
			}
			// B and C saw a normal call: they keep it only in the baseline.
			if base := ratioSampled(baseline, id); inB != base || inC != base {
				t.Errorf("trace %s only A found failing/slow: B kept=%v, C kept=%v, baseline=%v", id, inB, inC, base)
			}
			continue
		}
		if inA {
			normalA++
		}
		if inA == inB && inB == inC {
			agreeing++
		} else {
			t.Errorf("normal trace %s: A kept=%v, B kept=%v, C kept=%v", id, inA, inB, inC)
		}
	}
	if normalA == 0 {
		t.Fatal("no normal trace kept by A")
	}
	t.Logf("%d normal traces kept by A, B and C alike; %d of %d normal decisions agree", normalA, agreeing, n-200)
}

// TestTailMemoryBoundedWithSlowExporter: 10,000 requests with many local
// traces in flight at once and an exporter far slower than the traffic.
// The buffer never passes its caps, the request path never waits on the
// exporter (its bounded queue drops and counts the excess), and:
//   - with the traces in flight fitting the caps, nothing is evicted and
//     every failing and slow trace is kept;
//   - past the caps, the oldest traces are evicted whole and counted.
func TestTailMemoryBoundedWithSlowExporter(t *testing.T) {
	for _, tc := range []struct {
		name     string
		inFlight int
	}{
		{"within caps", 150}, // 150 × 3 buffered children = 450 spans
		{"over caps", 250},   // 750 spans for a cap of 600
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 10000
			rec := &tailRecorder{delay: 200 * time.Millisecond}
			cfg := tracing.TailConfig{Baseline: 0.1, Latency: 100 * time.Millisecond, MaxSpans: 600, MaxTraces: 300}
			p := newTailProvider(t, cfg, rec, tracing.BatchConfig{MaxQueueSize: 256, MaxExportBatchSize: 64})
			tr := p.Tracer()

			type open struct {
				span trace.Span
				rq   request
				at   time.Time
			}
			var window []open
			var failingOrSlow uint64
			start := time.Now()
			peakHeap := uint64(0)
			end := func(o open) {
				if o.rq.failing {
					o.span.SetStatus(codes.Error, "boom")
				}
				o.span.End(trace.WithTimestamp(o.at.Add(o.rq.dur)))
				if (o.rq.failing || o.rq.slow) && !o.span.SpanContext().IsSampled() {
					failingOrSlow++
				}
			}
			for i := 0; i < n; i++ {
				rq := mix(i)
				at := start.Add(time.Duration(i) * time.Millisecond)
				ctx, root := tr.Start(context.Background(), "GET /items/{id}", trace.WithTimestamp(at))
				for c := 0; c < childrenPerRequest; c++ {
					_, child := tr.Start(ctx, "child", trace.WithTimestamp(at))
					child.End(trace.WithTimestamp(at.Add(time.Millisecond)))
				}
				window = append(window, open{root, rq, at})
				if len(window) == tc.inFlight {
					end(window[0])
					window = window[1:]
				}
				if st := p.Tail().Stats(); st.BufferedSpans > cfg.MaxSpans || st.BufferedTraces > cfg.MaxTraces {
					t.Fatalf("request %d: buffer over its caps: %+v", i, st)
				}
				if i%1000 == 999 {
					peakHeap = max(peakHeap, heapInUse())
				}
			}
			for _, o := range window {
				end(o)
			}
			elapsed := time.Since(start)

			st := p.Tail().Stats()
			if st.PeakSpans > cfg.MaxSpans || st.PeakTraces > cfg.MaxTraces {
				t.Errorf("peak buffer over its caps: %+v", st)
			}
			if st.BufferedSpans != 0 || st.BufferedTraces != 0 {
				t.Errorf("buffer not empty once every root ended: %+v", st)
			}
			if p.Tail().Evicted() != st.EvictedSpans {
				t.Errorf("Evicted() = %d, stats say %d", p.Tail().Evicted(), st.EvictedSpans)
			}
			if tc.inFlight*childrenPerRequest <= cfg.MaxSpans {
				if st.EvictedSpans != 0 || st.KeptError+st.KeptSlow != failingOrSlow {
					t.Errorf("within the caps: kept %d failing/slow of %d, evicted %d spans",
						st.KeptError+st.KeptSlow, failingOrSlow, st.EvictedSpans)
				}
			} else if st.EvictedSpans == 0 || st.EvictedTraces == 0 {
				t.Errorf("nothing evicted with %d traces in flight: %+v", tc.inFlight, st)
			}
			// 64 spans per 200 ms is slower than what is kept: the export
			// queue fills, drops and counts.
			if p.DroppedSpans() == 0 {
				t.Errorf("the export queue never filled: the exporter was not slow enough to test anything")
			}
			// Had the request path waited on the exporter, the kept spans
			// alone would have taken minutes.
			if elapsed > 20*time.Second {
				t.Errorf("10,000 requests took %v: the request path waited on the exporter", elapsed)
			}
			t.Logf("%v for %d requests, %d in flight; tail: %+v; export queue dropped %d spans; heap in use at most %d MiB",
				elapsed.Round(time.Millisecond), n, tc.inFlight, st, p.DroppedSpans(), peakHeap>>20)
		})
	}
}

// TestTailEvictionIsOldestFirstAndWhole: the oldest trace goes first, and
// an evicted trace is not exported in part later.
func TestTailEvictionIsOldestFirstAndWhole(t *testing.T) {
	rec := &tailRecorder{}
	p := newTailProvider(t, tracing.TailConfig{MaxSpans: 4, MaxTraces: 2}, rec, tracing.BatchConfig{})
	tr := p.Tracer()
	// Three failing traces open at once: the first is evicted when the
	// third starts (trace cap 2).
	var roots []trace.Span
	var ctxs []context.Context
	for i := 0; i < 3; i++ {
		ctx, root := tr.Start(context.Background(), "GET /x")
		_, child := tr.Start(ctx, "child")
		child.End()
		roots = append(roots, root)
		ctxs = append(ctxs, ctx)
	}
	// A late child of the evicted trace, then its root: dropped, counted.
	_, late := tr.Start(ctxs[0], "late")
	late.End()
	for _, r := range roots {
		r.SetStatus(codes.Error, "boom")
		r.End()
	}
	flush(t, p)
	got := rec.byTrace()
	if len(got[roots[0].SpanContext().TraceID()]) != 0 {
		t.Errorf("the evicted trace was exported in part: %d spans", len(got[roots[0].SpanContext().TraceID()]))
	}
	for _, r := range roots[1:] {
		checkWhole(t, r.SpanContext().TraceID(), got[r.SpanContext().TraceID()], 2)
	}
	st := p.Tail().Stats()
	if st.EvictedTraces != 1 || st.EvictedSpans != 3 { // child at eviction, then late and root
		t.Errorf("stats: %+v", st)
	}

	// The span cap: one trace alone filling the buffer is evicted.
	ctx, root := tr.Start(context.Background(), "GET /big")
	for i := 0; i < 6; i++ {
		_, c := tr.Start(ctx, "child")
		c.End()
	}
	root.SetStatus(codes.Error, "boom")
	root.End()
	flush(t, p)
	if n := len(rec.byTrace()[root.SpanContext().TraceID()]); n != 0 {
		t.Errorf("a trace over the span cap was exported in part: %d spans", n)
	}
	if st := p.Tail().Stats(); st.PeakSpans > 4 {
		t.Errorf("peak %d spans over the cap of 4", st.PeakSpans)
	}
}

// TestTailSamplerDecisions checks what each kind of parent gets.
func TestTailSamplerDecisions(t *testing.T) {
	ts := tracing.NewTailSampler(tracing.TailConfig{Baseline: 0.5})
	s := ts.Sampler()
	var inBase, outBase trace.TraceID
	for inBase == (trace.TraceID{}) || outBase == (trace.TraceID{}) {
		var id trace.TraceID
		_, _ = rand.Read(id[:])
		if ts.InBaseline(id) {
			inBase = id
		} else {
			outBase = id
		}
	}
	parent := func(id trace.TraceID, sampled, remote bool) context.Context {
		var f trace.TraceFlags
		if sampled {
			f = trace.FlagsSampled
		}
		return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: id, SpanID: trace.SpanID{1}, TraceFlags: f, Remote: remote,
		}))
	}
	cases := []struct {
		name string
		ctx  context.Context
		id   trace.TraceID
		want sdktrace.SamplingDecision
	}{
		{"root in baseline", context.Background(), inBase, sdktrace.RecordAndSample},
		{"root outside baseline", context.Background(), outBase, sdktrace.RecordOnly},
		{"remote sampled parent", parent(outBase, true, true), outBase, sdktrace.RecordAndSample},
		{"remote unsampled parent outside baseline", parent(outBase, false, true), outBase, sdktrace.RecordOnly},
		{"remote unsampled parent in baseline", parent(inBase, false, true), inBase, sdktrace.RecordAndSample},
		{"local sampled parent", parent(outBase, true, false), outBase, sdktrace.RecordAndSample},
		// A local unsampled parent that is not recording (ended, or not
		// ours) makes a new local root.
		{"local non-recording unsampled parent", parent(outBase, false, false), outBase, sdktrace.RecordOnly},
	}
	for _, c := range cases {
		if got := s.ShouldSample(sdktrace.SamplingParameters{ParentContext: c.ctx, TraceID: c.id}).Decision; got != c.want {
			t.Errorf("%s: decision %v, want %v", c.name, got, c.want)
		}
	}
}

// TestTailBaselineIsTraceIDRatioBased: the baseline is the SDK's
// TraceIDRatioBased function of the trace id, at every ratio.
func TestTailBaselineIsTraceIDRatioBased(t *testing.T) {
	for _, ratio := range []float64{0, 0.001, 0.01, 0.1, 0.5, 0.999, 1} {
		ts := tracing.NewTailSampler(tracing.TailConfig{Baseline: ratio})
		for i := 0; i < 20000; i++ {
			var id trace.TraceID
			_, _ = rand.Read(id[:])
			if got, want := ts.InBaseline(id), ratioSampled(ratio, id); got != want {
				t.Fatalf("ratio %g, id %s: baseline %v, TraceIDRatioBased %v", ratio, id, got, want)
			}
		}
	}
}

// TestTailLateSpansFollowTheDecision: a span ending after its local root
// goes where its trace went; a second local root of a kept trace (a retry
// reaching this service again) is kept too; Kept says so.
func TestTailLateSpansFollowTheDecision(t *testing.T) {
	rec := &tailRecorder{}
	p := newTailProvider(t, tracing.TailConfig{}, rec, tracing.BatchConfig{})
	tr := p.Tracer()
	ts := p.Tail()

	// Kept: failing root, with a child still running when it ends.
	ctx, root := tr.Start(context.Background(), "GET /a")
	_, late := tr.Start(ctx, "late")
	if ts.Kept(root.SpanContext()) {
		t.Error("Kept before the root ended")
	}
	root.SetStatus(codes.Error, "boom")
	root.End()
	if !ts.Kept(root.SpanContext()) {
		t.Error("Kept false for a kept trace")
	}
	prev := wiring.Tracing.Load()
	wiring.Tracing.Store(p)
	if !tracing.Kept(root.SpanContext()) {
		t.Error("tracing.Kept false for a trace the current provider kept")
	}
	wiring.Tracing.Store(prev)
	late.End()
	// The same trace reaching this service again, through a remote parent.
	again := trace.ContextWithRemoteSpanContext(context.Background(), root.SpanContext())
	_, second := tr.Start(again, "GET /a")
	second.End()

	// Dropped: a normal root and its late child.
	ctx2, root2 := tr.Start(context.Background(), "GET /b")
	_, late2 := tr.Start(ctx2, "late")
	root2.End()
	late2.End()
	if ts.Kept(root2.SpanContext()) {
		t.Error("Kept true for a dropped trace")
	}
	wiring.Tracing.Store(p)
	if tracing.Kept(root2.SpanContext()) {
		t.Error("tracing.Kept true for a dropped trace")
	}
	wiring.Tracing.Store(prev)
	flush(t, p)
	got := rec.byTrace()
	if n := len(got[root.SpanContext().TraceID()]); n != 3 {
		t.Errorf("kept trace exported %d spans, want 3 (root, late child, second root)", n)
	}
	if n := len(got[root2.SpanContext().TraceID()]); n != 0 {
		t.Errorf("dropped trace exported %d spans", n)
	}
	if st := ts.Stats(); st.EvictedSpans != 0 || st.BufferedSpans != 0 {
		t.Errorf("stats: %+v", st)
	}
}

// TestTailAnyError: by default only the local root's error keeps a trace;
// with AnyError, any span's does.
func TestTailAnyError(t *testing.T) {
	for _, anyErr := range []bool{false, true} {
		rec := &tailRecorder{}
		p := newTailProvider(t, tracing.TailConfig{AnyError: anyErr}, rec, tracing.BatchConfig{})
		ctx, root := p.Tracer().Start(context.Background(), "GET /a")
		_, child := p.Tracer().Start(ctx, "db")
		child.SetStatus(codes.Error, "timeout")
		child.End()
		root.End()
		flush(t, p)
		if kept := len(rec.byTrace()[root.SpanContext().TraceID()]) == 2; kept != anyErr {
			t.Errorf("AnyError=%v: child error kept the trace: %v", anyErr, kept)
		}
	}
}

// TestTailRouteQuantile: with LatencyQuantile 0.99, "slow" is relative to
// each route's own recent durations: a fast route's outliers are kept, a
// slow route's usual durations are not, and about 1% of steady traffic is
// kept as slow.
func TestTailRouteQuantile(t *testing.T) {
	rec := &tailRecorder{}
	p := newTailProvider(t, tracing.TailConfig{LatencyQuantile: 0.99}, rec, tracing.BatchConfig{})
	tr := p.Tracer()
	start := time.Now()
	var outliers []trace.SpanContext
	var usualSlowRoute int
	const n = 5000
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(i) * time.Millisecond)
		// /fast: 1–2 ms; every 500th takes 30 ms (0.2%).
		d := time.Millisecond + time.Duration(i*7919%1000)*time.Microsecond
		if i%500 == 499 {
			d = 30 * time.Millisecond
		}
		sc, _ := request{dur: d}.run(tr, context.Background(), "GET /fast", at)
		if i%500 == 499 {
			outliers = append(outliers, sc)
		}
		// /report: 200–260 ms, always: far slower than /fast's outliers.
		request{dur: 200*time.Millisecond + time.Duration(i*104729%60000)*time.Microsecond}.run(tr, context.Background(), "GET /report", at)
	}
	flush(t, p)
	got := rec.byTrace()
	keptOutliers := 0
	for i, sc := range outliers {
		if len(got[sc.TraceID()]) == 0 {
			t.Errorf("outlier %d of /fast (30 ms) not kept", i)
		} else {
			keptOutliers++
		}
	}
	for _, spans := range got {
		for _, s := range spans {
			if s.Name() == "GET /report" {
				usualSlowRoute++
			}
		}
	}
	// /report's durations are uniform: what is above its p99 is about 1%
	// (bucket precision makes it at most that).
	if frac := float64(usualSlowRoute) / n; frac > 0.02 {
		t.Errorf("%.1f%% of /report kept as slow, want about 1%% at most", 100*frac)
	}
	t.Logf("kept %d of %d /fast outliers, %d of %d /report roots", keptOutliers, len(outliers), usualSlowRoute, n)
}

// TestTailShutdownDropsUnfinished: traces still running at Shutdown are
// dropped and the sampler stops.
func TestTailShutdownDropsUnfinished(t *testing.T) {
	rec := &tailRecorder{}
	p := newTailProvider(t, tracing.TailConfig{}, rec, tracing.BatchConfig{})
	_, root := p.Tracer().Start(context.Background(), "GET /a")
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	root.SetStatus(codes.Error, "boom")
	root.End()
	if st := p.Tail().Stats(); st.BufferedTraces != 0 || st.BufferedSpans != 0 {
		t.Errorf("buffer after Shutdown: %+v", st)
	}
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
