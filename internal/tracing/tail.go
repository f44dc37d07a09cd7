package tracing

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TailSamplerName is the OTEL_TRACES_SAMPLER value that turns local tail
// sampling on (see TailSampler).
const TailSamplerName = "observe_tail"

// Defaults of TailConfig.
const (
	defaultTailBaseline  = 0.01 // OTEL_TRACES_SAMPLER_ARG unset
	defaultTailQuantile  = 0.99 // OBSERVE_TAIL_LATENCY unset
	defaultTailMaxSpans  = 8192
	defaultTailMaxTraces = 2048
)

// TailConfig configures local tail sampling. The zero value keeps errors
// only, with the default memory caps.
type TailConfig struct {
	// Baseline is the fraction (0 to 1) of normal traces kept. It is decided
	// from the trace id by the very function of the SDK's TraceIDRatioBased
	// sampler, so every service with the same Baseline — or with head
	// sampling at that ratio — keeps the same normal traces. A baseline trace
	// is known from its first span: it is marked sampled at once and
	// propagated so, and nothing of it is buffered.
	Baseline float64

	// Latency keeps a local trace whose root ran longer than this; 0: no
	// fixed threshold.
	Latency time.Duration

	// LatencyQuantile keeps a local trace whose root ran longer than this
	// quantile of the recent durations of roots of the same span name (for
	// the HTTP middleware, the route): 0.99 keeps what is slower than the
	// route's own p99. The quantile covers the last 1024 to 2048 roots of
	// that name, to about 6% precision, and applies once 100 were seen.
	// 0: off. With both Latency and LatencyQuantile, either one keeps.
	LatencyQuantile float64

	// AnyError keeps a local trace when any of its spans ended in error;
	// by default only the local root's status counts.
	AnyError bool

	// MaxSpans caps the spans buffered while their local root runs
	// (default defaultTailMaxSpans; about 1 KB each). MaxTraces caps the
	// local traces buffered (default defaultTailMaxTraces). Past either,
	// the oldest trace is evicted whole — none of it will be exported, its
	// later spans included — and counted (TailSampler.Evicted).
	MaxSpans  int
	MaxTraces int
}

// TailSampler is local tail sampling: a sampler and a span processor that
// together keep every error trace, every slow trace and a consistent
// fraction of the rest, deciding when the local root span ends — in
// process, with no collector in between.
//
// How a span is treated, by what its parent says:
//
//   - parent sampled (an upstream service decided to keep the trace, or a
//     local parent was): recorded and sampled, always kept, not buffered;
//   - no parent, or an unsampled remote parent (a local root): a baseline
//     trace (TailConfig.Baseline) is sampled at once and always kept; any
//     other is recorded unsampled — tentative — and its spans are buffered
//     until the local root ends;
//   - an unsampled local parent: recorded unsampled, buffered with its trace.
//
// When the last local root of a tentative trace ends, the trace is kept
// whole if the root (or, with AnyError, any of its spans) ended in error or
// the root was slow (TailConfig.Latency, TailConfig.LatencyQuantile); its
// spans then go, marked sampled, to the processors given to NewTailSampler
// (for a Provider: the in-process SpanStore, ExtraProcessors and the
// exporter's batch queue — the store, like the exporter, only ever holds
// kept spans). Otherwise it is dropped. A span ending after its trace was
// decided follows the decision.
//
// Trade-offs, plainly:
//
//   - Tentative traces propagate unsampled: a downstream service decides on
//     its own local view. With observe tail sampling there too it keeps its
//     own errors and slow calls and the same baseline traces, but not the
//     part of a trace that only the upstream found to be an error or slow.
//     A downstream service with head sampling (parentbased) drops tentative
//     traces and keeps baseline ones. For whole cross-service traces at
//     scale, export everything to an OpenTelemetry Collector and use its
//     tail_sampling processor (with a load-balancing exporter in front so a
//     trace's spans meet in one collector); this sampler is for services
//     that export directly, or to cut what reaches the collector.
//   - Every local root is recorded, so a request costs about what a sampled
//     one costs under head sampling, whatever is kept in the end (see the
//     benchmarks in tail_bench_test.go).
//   - A tentative trace is exported only once its local root has ended.
//     When more of them run at once than MaxSpans or MaxTraces allow, the
//     oldest are dropped whole (counted by Evicted); under sustained
//     overload that is most of them, as the oldest is the nearest to its
//     end: size the caps for the traces in flight at peak.
//   - Signals that record before the decision cannot know it. Metrics
//     recorded after the local root ended (the HTTP server middleware's)
//     ask Kept before attaching an exemplar; those recorded
//     inside a tentative trace (an outgoing call's) get no exemplar. Log
//     lines are written as they come, and stay findable by trace_id.
type TailSampler struct {
	cfg     TailConfig
	bound   uint64 // TraceIDRatioBased's threshold for Baseline
	next    []sdktrace.SpanProcessor
	sampler tailHeadSampler

	mu       sync.Mutex
	pending  map[trace.TraceID]*pendingTrace
	oldest   *pendingTrace // creation order: oldest evicted first
	newest   *pendingTrace
	buffered int // spans in pending
	decided  decisionCache
	latency  map[string]*latencyHist
	overflow *latencyHist // names beyond maxLatencyNames share it
	stopped  bool

	peakSpans, peakTraces     int
	keptError, keptSlow, drop uint64
	evictedTraces             uint64
	evictedSpans              atomic.Uint64
}

// maxLatencyNames bounds the per-name latency histograms (about 1.8 KB
// each); further names share one.
const maxLatencyNames = 256

// NewTailSampler returns local tail sampling configured by cfg. Kept spans
// of tentative traces are passed to next (OnEnd, marked sampled). Install
// its Sampler and register it as a span processor alongside next, which
// receive sampled spans from the provider directly:
//
//	tail := tracing.NewTailSampler(cfg, bsp)
//	tp := sdktrace.NewTracerProvider(
//		sdktrace.WithSampler(tail.Sampler()),
//		sdktrace.WithSpanProcessor(bsp),
//		sdktrace.WithSpanProcessor(tail),
//	)
//
// tracing.New does this when Config.Tail is set.
func NewTailSampler(cfg TailConfig, next ...sdktrace.SpanProcessor) *TailSampler {
	if cfg.MaxSpans <= 0 {
		cfg.MaxSpans = defaultTailMaxSpans
	}
	if cfg.MaxTraces <= 0 {
		cfg.MaxTraces = defaultTailMaxTraces
	}
	if !(cfg.Baseline > 0) { // NaN too
		cfg.Baseline = 0
	}
	if cfg.Baseline > 1 {
		cfg.Baseline = 1
	}
	if !(cfg.LatencyQuantile > 0 && cfg.LatencyQuantile < 1) {
		cfg.LatencyQuantile = 0
	}
	if cfg.Latency < 0 {
		cfg.Latency = 0
	}
	t := &TailSampler{
		cfg:     cfg,
		bound:   ratioBound(cfg.Baseline),
		pending: make(map[trace.TraceID]*pendingTrace),
		decided: newDecisionCache(max(cfg.MaxTraces, 1024)),
		latency: make(map[string]*latencyHist),
	}
	for _, p := range next {
		if p != nil {
			t.next = append(t.next, p)
		}
	}
	t.sampler = tailHeadSampler{
		bound: t.bound,
		desc:  fmt.Sprintf("ObserveTail{baseline:%g}", cfg.Baseline),
	}
	return t
}

// ratioBound is TraceIDRatioBased's upper bound for fraction: a trace is in
// the fraction when the trace id's last 8 bytes, shifted right by one, are
// below it. A fraction of 1 gives 1<<63, above every such value.
func ratioBound(fraction float64) uint64 {
	if !(fraction > 0) {
		return 0
	}
	if fraction >= 1 {
		return 1 << 63
	}
	return uint64(fraction * (1 << 63))
}

func inBaseline(bound uint64, id trace.TraceID) bool {
	return binary.BigEndian.Uint64(id[8:16])>>1 < bound
}

// Config returns the configuration in effect, defaults filled in.
func (t *TailSampler) Config() TailConfig { return t.cfg }

// Sampler returns the sampler the provider must use with t.
func (t *TailSampler) Sampler() sdktrace.Sampler { return t.sampler }

// InBaseline reports whether id is one of the normal traces kept whatever
// happens (TailConfig.Baseline), as every service with the same baseline
// decides it.
func (t *TailSampler) InBaseline(id trace.TraceID) bool { return inBaseline(t.bound, id) }

// tailHeadSampler is the sampler half: it records everything and samples at
// the start only what is known to be kept.
type tailHeadSampler struct {
	bound uint64
	desc  string
}

func (s tailHeadSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	parent := trace.SpanFromContext(p.ParentContext)
	psc := parent.SpanContext()
	res := sdktrace.SamplingResult{Decision: sdktrace.RecordOnly, Tracestate: psc.TraceState()}
	switch {
	case psc.IsSampled():
		res.Decision = sdktrace.RecordAndSample
	case psc.IsValid() && !psc.IsRemote() && parent.IsRecording():
		// A child of a tentative local trace: buffered with it.
	case inBaseline(s.bound, p.TraceID):
		res.Decision = sdktrace.RecordAndSample
	}
	return res
}

func (s tailHeadSampler) Description() string { return s.desc }

// pendingTrace is a tentative local trace being buffered.
type pendingTrace struct {
	id          trace.TraceID
	spans       []sdktrace.ReadOnlySpan
	roots       []trace.SpanID // local roots still running
	keep        keepReason
	prev, next  *pendingTrace
	rootsInline [2]trace.SpanID
}

type keepReason uint8

const (
	keepNone keepReason = iota
	keepSlow
	keepError
)

var pendingPool = sync.Pool{New: func() any { return new(pendingTrace) }}

// OnStart implements sdktrace.SpanProcessor: it registers the local roots
// of tentative traces.
func (t *TailSampler) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) {
	sc := s.SpanContext()
	if sc.IsSampled() {
		return
	}
	if psc := s.Parent(); psc.IsValid() && !psc.IsRemote() && trace.SpanFromContext(ctx).IsRecording() {
		return // a child: buffered when it ends
	}
	id := sc.TraceID()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	e := t.pending[id]
	if e == nil {
		if t.decided.get(id) == decidedKept {
			// The trace was kept here already (a retry, a second call
			// through this service): keep this part too, unbuffered.
			return
		}
		e = t.newPending(id)
	}
	e.roots = append(e.roots, sc.SpanID())
}

// newPending adds a pending trace, evicting the oldest at the trace cap.
func (t *TailSampler) newPending(id trace.TraceID) *pendingTrace {
	for len(t.pending) >= t.cfg.MaxTraces && t.oldest != nil {
		t.evict(t.oldest)
	}
	e := pendingPool.Get().(*pendingTrace)
	e.id = id
	e.roots = e.rootsInline[:0]
	e.prev = t.newest
	if t.newest != nil {
		t.newest.next = e
	} else {
		t.oldest = e
	}
	t.newest = e
	t.pending[id] = e
	if n := len(t.pending); n > t.peakTraces {
		t.peakTraces = n
	}
	return e
}

// unlink removes e from the pending set.
func (t *TailSampler) unlink(e *pendingTrace) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		t.oldest = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		t.newest = e.prev
	}
	e.prev, e.next = nil, nil
	delete(t.pending, e.id)
	t.buffered -= len(e.spans)
}

// evict drops e whole and remembers the trace as dropped, so its later
// spans are dropped too: what is exported is a whole local trace or nothing.
func (t *TailSampler) evict(e *pendingTrace) {
	t.unlink(e)
	t.evictedTraces++
	t.evictedSpans.Add(uint64(len(e.spans)))
	t.decided.put(e.id, decidedEvicted)
	recycle(e)
}

func recycle(e *pendingTrace) {
	clear(e.spans)
	if cap(e.spans) > 256 {
		e.spans = nil
	}
	*e = pendingTrace{spans: e.spans[:0]}
	pendingPool.Put(e)
}

// OnEnd implements sdktrace.SpanProcessor: it buffers a tentative span and,
// when it is the last local root of its trace, decides.
func (t *TailSampler) OnEnd(s sdktrace.ReadOnlySpan) {
	sc := s.SpanContext()
	if sc.IsSampled() {
		if t.cfg.LatencyQuantile > 0 && isLocalRoot(s) {
			t.mu.Lock()
			t.hist(s.Name()).add(s.EndTime().Sub(s.StartTime()))
			t.mu.Unlock()
		}
		return
	}
	id := sc.TraceID()
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	e := t.pending[id]
	if e == nil {
		// Decided already (a late span, or a root of a trace kept here
		// before), or evicted and forgotten.
		d := t.decided.get(id)
		if isLocalRoot(s) {
			t.slow(s.Name(), s.EndTime().Sub(s.StartTime()))
		}
		if d == decidedEvicted || d == undecided {
			t.evictedSpans.Add(1)
		}
		t.mu.Unlock()
		if d == decidedKept {
			t.forward1(s)
		}
		return
	}
	root := e.endRoot(sc.SpanID())
	if s.Status().Code == codes.Error && (root || t.cfg.AnyError) {
		e.keep = keepError
	}
	if root && t.slow(s.Name(), s.EndTime().Sub(s.StartTime())) && e.keep == keepNone {
		e.keep = keepSlow
	}
	if root && len(e.roots) == 0 {
		t.decide(e, s) // unlocks
		return
	}
	if t.buffered >= t.cfg.MaxSpans {
		for t.buffered >= t.cfg.MaxSpans && t.oldest != nil && t.oldest != e {
			t.evict(t.oldest)
		}
		if t.buffered >= t.cfg.MaxSpans { // e alone fills the buffer
			t.evict(e)
			t.evictedSpans.Add(1)
			t.mu.Unlock()
			return
		}
	}
	e.spans = append(e.spans, s)
	t.buffered++
	if t.buffered > t.peakSpans {
		t.peakSpans = t.buffered
	}
	t.mu.Unlock()
}

// decide finishes e with its last span s, then unlocks t.mu and exports
// the trace if it is kept.
func (t *TailSampler) decide(e *pendingTrace, s sdktrace.ReadOnlySpan) {
	t.unlink(e)
	keep := e.keep != keepNone || inBaseline(t.bound, e.id)
	switch e.keep {
	case keepError:
		t.keptError++
	case keepSlow:
		t.keptSlow++
	default:
		if !keep {
			t.drop++
		}
	}
	d := decidedDropped
	if keep {
		d = decidedKept
	}
	t.decided.put(e.id, d)
	t.mu.Unlock()
	if keep {
		t.forward(e.spans, s)
	}
	recycle(e)
}

// endRoot reports whether id is a running local root of e, and removes it.
func (e *pendingTrace) endRoot(id trace.SpanID) bool {
	for i, r := range e.roots {
		if r == id {
			last := len(e.roots) - 1
			e.roots[i] = e.roots[last]
			e.roots = e.roots[:last]
			return true
		}
	}
	return false
}

func isLocalRoot(s sdktrace.ReadOnlySpan) bool {
	p := s.Parent()
	return !p.IsValid() || p.IsRemote()
}

// slow reports whether a local root of name that ran d is slow, and
// records d in name's recent durations. t.mu is held.
func (t *TailSampler) slow(name string, d time.Duration) bool {
	slow := t.cfg.Latency > 0 && d > t.cfg.Latency
	if q := t.cfg.LatencyQuantile; q > 0 {
		h := t.hist(name)
		if th := h.threshold(q); th > 0 && d > th {
			slow = true
		}
		h.add(d)
	}
	return slow
}

func (t *TailSampler) hist(name string) *latencyHist {
	if h, ok := t.latency[name]; ok {
		return h
	}
	if len(t.latency) >= maxLatencyNames {
		if t.overflow == nil {
			t.overflow = new(latencyHist)
		}
		return t.overflow
	}
	h := new(latencyHist)
	t.latency[name] = h
	return h
}

// keptSpan is a span of a kept tentative trace: sampled, as its trace now is.
type keptSpan struct{ sdktrace.ReadOnlySpan }

func (k *keptSpan) SpanContext() trace.SpanContext {
	sc := k.ReadOnlySpan.SpanContext()
	return sc.WithTraceFlags(sc.TraceFlags().WithSampled(true))
}

func (t *TailSampler) forward(spans []sdktrace.ReadOnlySpan, last sdktrace.ReadOnlySpan) {
	ks := make([]keptSpan, len(spans)+1)
	for i, s := range spans {
		ks[i].ReadOnlySpan = s
	}
	ks[len(spans)].ReadOnlySpan = last
	for i := range ks {
		for _, p := range t.next {
			p.OnEnd(&ks[i])
		}
	}
}

func (t *TailSampler) forward1(s sdktrace.ReadOnlySpan) {
	k := &keptSpan{s}
	for _, p := range t.next {
		p.OnEnd(k)
	}
}

// Kept reports whether the trace of sc is kept, as far as this process
// knows: sampled in its context (by an upstream service, or in the
// baseline), or kept here when its local root ended. It is false while the
// local root runs and once the decision is forgotten (after about
// max(MaxTraces, 1024) later decisions). Ask it after the local root ended
// — the HTTP middleware records its metrics after ending its span — before
// pointing at the trace from another signal (an exemplar).
func (t *TailSampler) Kept(sc trace.SpanContext) bool {
	if sc.IsSampled() {
		return true
	}
	if !sc.IsValid() {
		return false
	}
	t.mu.Lock()
	d := t.decided.get(sc.TraceID())
	t.mu.Unlock()
	return d == decidedKept
}

// Evicted reports how many spans were dropped because the buffer reached a
// cap (TailConfig.MaxSpans or MaxTraces), with the rest of their trace —
// those buffered then and those ending later — or because they ended after
// their trace's decision was forgotten. observe exports it as
// observe_tail_sampling_evicted_spans_total.
func (t *TailSampler) Evicted() uint64 { return t.evictedSpans.Load() }

// TailStats is a snapshot of a TailSampler's counters.
type TailStats struct {
	BufferedSpans, BufferedTraces int // now
	PeakSpans, PeakTraces         int // high-water marks of the above
	KeptError, KeptSlow           uint64
	Dropped                       uint64 // tentative traces decided not kept
	EvictedSpans, EvictedTraces   uint64
}

// Stats returns the counters.
func (t *TailSampler) Stats() TailStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TailStats{
		BufferedSpans: t.buffered, BufferedTraces: len(t.pending),
		PeakSpans: t.peakSpans, PeakTraces: t.peakTraces,
		KeptError: t.keptError, KeptSlow: t.keptSlow, Dropped: t.drop,
		EvictedSpans: t.evictedSpans.Load(), EvictedTraces: t.evictedTraces,
	}
}

// Buffered reports how many spans are buffered now.
func (t *TailSampler) Buffered() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buffered
}

// Decisions reports how many tentative traces were kept for an error, kept
// for being slow, and dropped.
func (t *TailSampler) Decisions() (keptError, keptSlow, dropped uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.keptError, t.keptSlow, t.drop
}

// Shutdown implements sdktrace.SpanProcessor. Tentative traces still
// running are dropped: their roots never end, as unended spans are never
// exported under head sampling either.
func (t *TailSampler) Shutdown(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	for t.oldest != nil {
		e := t.oldest
		t.unlink(e)
		recycle(e)
	}
	return nil
}

// ForceFlush implements sdktrace.SpanProcessor. Nothing decided waits in
// a TailSampler (kept spans are handed on at once); what is undecided
// cannot be flushed.
func (t *TailSampler) ForceFlush(context.Context) error { return nil }

// decisionCache remembers the last decisions, by trace id, in a ring.
type decisionCache struct {
	m    map[trace.TraceID]decision
	ring []trace.TraceID
	next int
	full bool
}

type decision struct {
	slot  int32
	state decisionState
}

type decisionState uint8

const (
	undecided decisionState = iota // or forgotten
	decidedDropped
	decidedKept
	decidedEvicted // dropped at a cap: its later spans count as evicted
)

func newDecisionCache(n int) decisionCache {
	return decisionCache{m: make(map[trace.TraceID]decision, n), ring: make([]trace.TraceID, n)}
}

func (c *decisionCache) get(id trace.TraceID) decisionState { return c.m[id].state }

func (c *decisionCache) put(id trace.TraceID, state decisionState) {
	if c.full {
		old := c.ring[c.next]
		if d, ok := c.m[old]; ok && int(d.slot) == c.next {
			delete(c.m, old)
		}
	}
	c.ring[c.next] = id
	c.m[id] = decision{slot: int32(c.next), state: state}
	c.next++
	if c.next == len(c.ring) {
		c.next = 0
		c.full = true
	}
}

// Tail returns the provider's local tail sampler, or nil when tail sampling
// is off.
func (p *Provider) Tail() *TailSampler {
	if p == nil {
		return nil
	}
	return p.tail
}

// installTail builds the provider's TailSampler, forwarding kept spans to
// the store, the extra processors and the batch queue, and returns the
// options that install it (after the others: its sampler wins).
func (p *Provider) installTail(c TailConfig, extra []sdktrace.SpanProcessor) []sdktrace.TracerProviderOption {
	next := append([]sdktrace.SpanProcessor{p.store}, extra...)
	if p.batch != nil {
		next = append(next, p.batch)
	}
	p.tail = NewTailSampler(c, next...)
	return []sdktrace.TracerProviderOption{
		sdktrace.WithSampler(withEvidence(p.tail.Sampler())),
		sdktrace.WithSpanProcessor(p.tail),
	}
}

// Kept reports whether the trace of sc is kept: sampled, or kept by the
// current provider's tail sampling (see TailSampler.Kept). Without tail
// sampling it is sc.IsSampled(). Metrics use it to attach exemplars only
// to kept traces.
func Kept(sc trace.SpanContext) bool {
	if sc.IsSampled() {
		return true
	}
	if p := current(); p != nil && p.tail != nil {
		return p.tail.Kept(sc)
	}
	return false
}
