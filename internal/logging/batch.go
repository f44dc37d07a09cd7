package logging

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/observekit/observe/internal/batch"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/trace"
)

// batchProcessor is a bounded batching sdklog.Processor on observe's export
// queue (internal/batch): OnEmit never blocks, a full queue drops the record
// and counts it, failed exports are counted and retried with a backoff, and
// Shutdown returns by its deadline. Failed exports and drops are logged at
// WARN, rate limited, to the JSON lines only.
//
// The Handler's export stage does not go through OnEmit: converting a slog
// record into the SDK's (the bridge, then the SDK logger's copy and
// de-duplication of attributes) costs several times what writing the JSON
// line does, so it hands the record over with enqueue, and the queue's
// worker converts it (through convert) right before taking the queue. The
// caller pays for a copy under a short lock; pending and queued records
// share the one bound.
type batchProcessor struct {
	exp sdklog.Exporter
	q   *batch.Queue[sdklog.Record]

	// pending holds records from enqueue, converted by the worker; a lock
	// of its own keeps callers clear of the worker's OnEmit calls.
	pmu        sync.Mutex
	pending    []pendingRecord
	npending   atomic.Int64    // len(pending)
	converting atomic.Int64    // taken from pending, being converted
	convMu     sync.Mutex      // one convertPending at a time, in order
	spare      []pendingRecord // swapped with pending, under convMu
	// convert turns a pending record into an SDK record and emits it (the
	// OTel slog bridge on the provider whose processor this is). Set once,
	// before the first enqueue.
	convert slog.Handler
	// closing: the provider is shutting down; enqueue drops (counted), and
	// once sdkDown is set what is still pending is counted as dropped
	// instead of handed to an SDK provider that ignores it.
	closing atomic.Bool
	sdkDown atomic.Bool

	stopOnce sync.Once
	stopErr  error

	logger   atomic.Pointer[slog.Logger] // WARN lines; nil: none
	failWarn batch.Limiter
	dropWarn batch.Limiter
}

// warnInterval bounds the WARN lines about failed exports and drops to one
// of each per interval: an unreachable collector must not flood the logs.
const warnInterval = 30 * time.Second

const (
	defaultMaxQueue = batch.DefaultMaxQueue
	defaultMaxBatch = batch.DefaultMaxBatch
)

func newBatchProcessor(exp sdklog.Exporter, delay, timeout time.Duration) *batchProcessor {
	p := &batchProcessor{exp: exp}
	p.q = batch.New(batch.Config{Delay: delay, Timeout: timeout}, batch.Hooks[sdklog.Record]{
		Export:    exp.Export,
		Prepare:   p.convertPending,
		Pending:   func() int { return int(p.npending.Load()) },
		Failed:    p.warnFailed,
		QueueFull: p.warnDropped,
	})
	return p
}

func (p *batchProcessor) dropped() uint64  { return p.q.Dropped() }
func (p *batchProcessor) failures() uint64 { return p.q.Failures() }

// Enabled implements sdklog.Processor.
func (p *batchProcessor) Enabled(context.Context, sdklog.EnabledParameters) bool {
	return !p.q.Stopping()
}

// OnEmit queues a copy of r, or drops and counts it.
func (p *batchProcessor) OnEmit(ctx context.Context, r *sdklog.Record) error {
	if t, ok := ctx.Value(observedKey{}).(time.Time); ok {
		// Converted by the worker: observed when it was logged, not now.
		r.SetObservedTimestamp(t)
	}
	if p.q.Len() >= p.q.Config().MaxQueue && !p.q.Stopping() {
		// Full: no copy of a record that is to be dropped.
		p.q.Drop(1)
		p.warnDropped()
		return nil
	}
	p.q.Add(r.Clone())
	return nil
}

// observedKey carries, from the worker's conversion to OnEmit, when a
// handed-over record was logged: the SDK would otherwise stamp it observed
// when converted, which a backoff can delay by seconds.
type observedKey struct{}

// pendingRecord is a record handed over by enqueue, with the trace context
// of the call that logged it.
type pendingRecord struct {
	sc      trace.SpanContext
	r       slog.Record
	x       *exportStage // non-nil: r is still to be prepared by x.build
	rate    float64      // sample_rate, for x.build
	hasRate bool
}

// enqueue queues a record from the export stage (redacted, and either
// prepared or of plain values the worker prepares), to be converted and
// exported by the worker; or drops and counts it. The record must not be
// used by the caller afterwards.
func (p *batchProcessor) enqueue(pr pendingRecord) {
	if p.q.Stopping() || p.closing.Load() {
		p.q.Drop(1)
		return
	}
	cfg := p.q.Config()
	p.pmu.Lock()
	if p.closing.Load() {
		// Again under the lock: Shutdown counts what is pending under it.
		p.pmu.Unlock()
		p.q.Drop(1)
		return
	}
	n := len(p.pending) + int(p.converting.Load()) + p.q.Len()
	if n >= cfg.MaxQueue {
		p.pmu.Unlock()
		p.q.Drop(1)
		p.warnDropped()
		return
	}
	p.pending = append(p.pending, pr)
	p.npending.Store(int64(len(p.pending)))
	p.pmu.Unlock()
	if n+1 >= cfg.MaxBatch {
		p.q.Wake()
	}
}

// convertPending converts the pending records into SDK records, which
// reach OnEmit (and the queue) through the provider.
func (p *batchProcessor) convertPending() { p.convertPendingBy(nil) }

// convertPendingBy is convertPending until ctx ends (nil: no end).
func (p *batchProcessor) convertPendingBy(ctx context.Context) {
	p.convMu.Lock()
	defer p.convMu.Unlock()
	p.pmu.Lock()
	tmp := p.pending
	p.pending = p.spare[:0]
	p.converting.Store(int64(len(tmp))) // before npending: counted twice, never not at all
	p.npending.Store(0)
	p.pmu.Unlock()
	defer func() {
		clear(tmp)
		p.spare = tmp[:0]
		p.converting.Store(0)
	}()
	if len(tmp) == 0 {
		return
	}
	if p.sdkDown.Load() {
		p.q.Drop(len(tmp))
		return
	}
	bg := context.Background()
	for i := range tmp {
		if ctx != nil && i%64 == 0 && ctx.Err() != nil {
			p.q.Drop(len(tmp) - i)
			return
		}
		pr := &tmp[i]
		ctx := bg
		if pr.sc.IsValid() {
			ctx = trace.ContextWithSpanContext(bg, pr.sc)
		}
		observed := pr.r.Time
		if observed.IsZero() {
			observed = time.Now()
		}
		p.convertOne(context.WithValue(ctx, observedKey{}, observed), pr)
		// Now in the queue (or dropped): no longer counted here, or a
		// burst converted at once would count twice toward the bound and
		// enqueue would drop records with the queue half empty.
		p.converting.Add(-1)
	}
}

// convertOne emits one record; a panic (a bug, not user code: the record
// holds only resolved values) drops and counts it instead of ending the
// process.
func (p *batchProcessor) convertOne(ctx context.Context, pr *pendingRecord) {
	defer func() {
		if recover() != nil {
			p.q.Drop(1)
		}
	}()
	if p.convert == nil {
		p.q.Drop(1)
		return
	}
	r := pr.r
	if pr.x != nil {
		r = pr.x.build(r, pr.rate, pr.hasRate)
	}
	_ = p.convert.Handle(ctx, r)
}

// closePending stops enqueue and converts what is pending, on the caller's
// goroutine (the worker may be waiting on an export): the provider's
// Shutdown calls it before the SDK provider's, which refuses records from
// then on. It is bounded work, a queue's worth of conversions at most, and
// stops at ctx's end: what is left then is dropped and counted.
func (p *batchProcessor) closePending(ctx context.Context) {
	p.closing.Store(true)
	p.convertPendingBy(ctx)
	p.sdkDown.Store(true)
}

// ForceFlush exports every record queued before the call, by ctx's deadline.
func (p *batchProcessor) ForceFlush(ctx context.Context) error { return p.q.ForceFlush(ctx) }

// Shutdown exports what is queued and stops the worker and the exporter, by
// ctx's deadline; past it, the export in flight is cancelled.
func (p *batchProcessor) Shutdown(ctx context.Context) error {
	p.stopOnce.Do(func() {
		// Whoever shut the SDK provider down, it takes no more records:
		// what is still pending is counted, not converted.
		p.pmu.Lock()
		p.closing.Store(true)
		p.sdkDown.Store(true)
		p.pmu.Unlock()
		p.stopErr = p.q.Shutdown(ctx)
		// Records handed over after the last conversion are counted.
		p.pmu.Lock()
		p.q.Drop(len(p.pending))
		p.pending = nil
		p.pmu.Unlock()
		if err := p.exp.Shutdown(ctx); err != nil && p.stopErr == nil {
			p.stopErr = err
		}
	})
	return p.stopErr
}

func (p *batchProcessor) warnFailed(err error, n int) {
	ok, unlogged := p.failWarn.Allow(warnInterval)
	if !ok {
		return
	}
	if l := p.logger.Load(); l != nil {
		l.WarnContext(lineOnly(context.Background()), "observe: logs export failed; log records dropped",
			slog.String("signal", "logs"),
			slog.String("error", err.Error()),
			slog.Int("records", n),
			slog.Uint64("failures_not_logged", unlogged),
			slog.Uint64("logs_dropped_total", p.q.Dropped()),
		)
	}
}

func (p *batchProcessor) warnDropped() {
	if ok, _ := p.dropWarn.Allow(warnInterval); !ok {
		return
	}
	if l := p.logger.Load(); l != nil {
		l.WarnContext(lineOnly(context.Background()), "observe: log records dropped: the export queue is full",
			slog.Int("queue_size", p.q.Config().MaxQueue),
			slog.Uint64("logs_dropped_total", p.q.Dropped()),
		)
	}
}

// lineOnlyKey marks a context whose records go to the JSON lines only, not
// to the export: the export's own trouble must not feed the export.
type lineOnlyKey struct{}

func lineOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, lineOnlyKey{}, true)
}

func isLineOnly(ctx context.Context) bool {
	return ctx != nil && ctx.Value(lineOnlyKey{}) != nil
}
