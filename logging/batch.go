package logging

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/trace"
)

// batchProcessor is a bounded batching sdklog.Processor. It does what the
// SDK's BatchProcessor does, plus what that one does not expose: it counts
// the records it drops (queue full, or in a failed export) and the exports
// that fail, and logs both at WARN, rate limited, to the JSON lines only.
//
// OnEmit never blocks: it appends a copy of the record to a bounded buffer
// under a short lock; a full buffer drops the record and counts it. The
// worker wakes when a batch is full or the interval has passed.
//
// The Handler's export stage does not go through OnEmit: converting a slog
// record into the SDK's (the bridge, then the SDK logger's copy and
// de-duplication of attributes) costs several times what writing the JSON
// line does, so it hands the prepared slog record over with enqueue, and the
// worker converts it (through convert) right before the export. The request
// pays for a copy under a short lock; pending and buffered records share
// the one bound.
type batchProcessor struct {
	exp      sdklog.Exporter
	maxQueue int
	maxBatch int
	delay    time.Duration
	timeout  time.Duration

	mu   sync.Mutex
	buf  []sdklog.Record
	full chan struct{} // a batch is ready (capacity 1)
	// pending holds records from enqueue, converted by the worker; a lock
	// of its own keeps callers clear of the worker's OnEmit calls.
	pmu      sync.Mutex
	pending  []pendingRecord
	npending atomic.Int64 // len(pending)
	nbuf     atomic.Int64 // len(buf), for enqueue's bound
	// convert turns a pending record into an SDK record and emits it (the
	// OTel slog bridge on the provider whose processor this is). Set once,
	// before the first enqueue.
	convert slog.Handler

	flushCh chan chan struct{}
	convMu  sync.Mutex // one convertPending at a time, in order
	// closing: the provider is shutting down; enqueue drops (counted), and
	// once sdkDown is set the worker counts what is still pending as
	// dropped instead of handing it to an SDK provider that ignores it.
	closing  atomic.Bool
	sdkDown  atomic.Bool
	stopCh   chan struct{}
	done     chan struct{}
	stopping atomic.Bool
	stopOnce sync.Once
	stopErr  error
	// exportCtx parents every export; Shutdown cancels it when its own
	// deadline passes, so the worker cannot outlive Shutdown by a timeout.
	exportCtx    context.Context
	cancelExport context.CancelFunc

	spare []pendingRecord // the worker's: swapped with pending

	dropped  atomic.Uint64
	failures atomic.Uint64

	logger      atomic.Pointer[slog.Logger] // WARN lines; nil: none
	lastFail    atomic.Int64                // unix nanos of the last failure line
	lastDrop    atomic.Int64                // unix nanos of the last queue-full line
	unloggedErr atomic.Uint64
}

// warnInterval bounds the WARN lines about failed exports and drops to one
// of each per interval: an unreachable collector must not flood the logs.
const warnInterval = 30 * time.Second

const (
	defaultMaxQueue = 2048
	defaultMaxBatch = 512
)

func newBatchProcessor(exp sdklog.Exporter, delay, timeout time.Duration) *batchProcessor {
	if delay <= 0 {
		delay = time.Second
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	p := &batchProcessor{
		exp:      exp,
		maxQueue: defaultMaxQueue,
		maxBatch: defaultMaxBatch,
		delay:    delay,
		timeout:  timeout,
		buf:      make([]sdklog.Record, 0, defaultMaxBatch),
		full:     make(chan struct{}, 1),
		flushCh:  make(chan chan struct{}),
		stopCh:   make(chan struct{}),
		done:     make(chan struct{}),
	}
	p.exportCtx, p.cancelExport = context.WithCancel(context.Background())
	go p.run()
	return p
}

// Enabled implements sdklog.Processor.
func (p *batchProcessor) Enabled(context.Context, sdklog.EnabledParameters) bool {
	return !p.stopping.Load()
}

// OnEmit queues a copy of r, or drops and counts it.
func (p *batchProcessor) OnEmit(_ context.Context, r *sdklog.Record) error {
	if p.stopping.Load() {
		p.dropped.Add(1)
		return nil
	}
	p.mu.Lock()
	n := len(p.buf)
	if n >= p.maxQueue {
		p.mu.Unlock()
		p.dropped.Add(1)
		p.warnDropped()
		return nil
	}
	p.buf = append(p.buf, r.Clone())
	p.nbuf.Store(int64(len(p.buf)))
	p.mu.Unlock()
	if n+1 == p.maxBatch {
		select {
		case p.full <- struct{}{}:
		default:
		}
	}
	return nil
}

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
	if p.stopping.Load() || p.closing.Load() {
		p.dropped.Add(1)
		return
	}
	p.pmu.Lock()
	n := len(p.pending) + int(p.nbuf.Load())
	if n >= p.maxQueue {
		p.pmu.Unlock()
		p.dropped.Add(1)
		p.warnDropped()
		return
	}
	p.pending = append(p.pending, pr)
	p.npending.Store(int64(len(p.pending)))
	p.pmu.Unlock()
	if n+1 == p.maxBatch {
		select {
		case p.full <- struct{}{}:
		default:
		}
	}
}

// convertPending converts the pending records into SDK records, which
// reach OnEmit (and the buffer) through the provider. tmp is a spare slice,
// returned emptied for the next call.
func (p *batchProcessor) convertPending(tmp []pendingRecord) []pendingRecord {
	p.convMu.Lock()
	defer p.convMu.Unlock()
	p.pmu.Lock()
	tmp, p.pending = p.pending, tmp[:0]
	p.npending.Store(0)
	p.pmu.Unlock()
	if len(tmp) == 0 {
		return tmp
	}
	if p.sdkDown.Load() {
		p.dropped.Add(uint64(len(tmp)))
		clear(tmp)
		return tmp[:0]
	}
	bg := context.Background()
	for i := range tmp {
		pr := &tmp[i]
		ctx := bg
		if pr.sc.IsValid() {
			ctx = trace.ContextWithSpanContext(bg, pr.sc)
		}
		p.convertOne(ctx, pr)
	}
	clear(tmp)
	return tmp[:0]
}

// convertOne emits one record; a panic (a bug, not user code: the record
// holds only resolved values) drops and counts it instead of ending the
// process.
func (p *batchProcessor) convertOne(ctx context.Context, pr *pendingRecord) {
	defer func() {
		if recover() != nil {
			p.dropped.Add(1)
		}
	}()
	if p.convert == nil {
		p.dropped.Add(1)
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
// then on. It is bounded work: at most a queue's worth of conversions.
func (p *batchProcessor) closePending() {
	p.closing.Store(true)
	_ = p.convertPending(nil)
	p.sdkDown.Store(true)
}

// ForceFlush exports every record queued before the call, by ctx's deadline.
func (p *batchProcessor) ForceFlush(ctx context.Context) error {
	if p.stopping.Load() {
		return nil
	}
	ack := make(chan struct{})
	select {
	case p.flushCh <- ack:
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown exports what is queued and stops the worker and the exporter, by
// ctx's deadline; past it, the export in flight is cancelled.
func (p *batchProcessor) Shutdown(ctx context.Context) error {
	p.stopOnce.Do(func() {
		p.stopping.Store(true)
		close(p.stopCh)
		select {
		case <-p.done:
		case <-ctx.Done():
			p.cancelExport()
			<-p.done
			p.stopErr = ctx.Err()
		}
		p.cancelExport()
		if err := p.exp.Shutdown(ctx); err != nil && p.stopErr == nil {
			p.stopErr = err
		}
	})
	return p.stopErr
}

func (p *batchProcessor) run() {
	defer close(p.done)
	timer := time.NewTimer(p.delay)
	defer timer.Stop()
	var taken []sdklog.Record
	var backoff time.Duration
	for {
		full := p.full
		if backoff > 0 {
			// A failing backend is not retried batch after batch: that
			// burns the CPU the service needs. Records queue meanwhile; a
			// full queue drops and counts them.
			full = nil
		}
		var failed bool
		select {
		case <-p.stopCh:
			taken, _ = p.drain(taken, true, false)
			// Records that raced past the stopping check are counted.
			p.mu.Lock()
			p.dropped.Add(uint64(len(p.buf)))
			p.buf = nil
			p.mu.Unlock()
			p.pmu.Lock()
			p.dropped.Add(uint64(len(p.pending)))
			p.pending = nil
			p.pmu.Unlock()
			return
		case ack := <-p.flushCh:
			taken, failed = p.drain(taken, true, false)
			close(ack)
		case <-full:
			taken, failed = p.drain(taken, false, true)
		case <-timer.C:
			taken, failed = p.drain(taken, true, true)
		}
		backoff = nextBackoff(backoff, failed)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(p.delay, backoff))
	}
}

// Export retry pacing after failures: doubling from minBackoff to maxBackoff,
// back to none after a success.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 5 * time.Second
)

func nextBackoff(cur time.Duration, failed bool) time.Duration {
	if !failed {
		return 0
	}
	if cur == 0 {
		return minBackoff
	}
	return min(2*cur, maxBackoff)
}

// drain exports what is queued in batches, until fewer than a batch are left
// (all: until nothing is). The buffers are swapped, not copied. With
// stopOnFail, a failed export ends the drain and drops (counting) the rest of
// what was taken: exporting it now would only fail again.
func (p *batchProcessor) drain(taken []sdklog.Record, all, stopOnFail bool) ([]sdklog.Record, bool) {
	failed := false
	for {
		p.spare = p.convertPending(p.spare)
		p.mu.Lock()
		taken, p.buf = p.buf, taken[:0]
		p.nbuf.Store(0)
		p.mu.Unlock()
		if len(taken) == 0 {
			return taken, failed
		}
		for i := 0; i < len(taken); i += p.maxBatch {
			if err := p.export(taken[i:min(i+p.maxBatch, len(taken))]); err != nil {
				failed = true
				if stopOnFail {
					p.dropped.Add(uint64(len(taken) - min(i+p.maxBatch, len(taken))))
					break
				}
			}
		}
		clear(taken)
		taken = taken[:0]
		if failed && stopOnFail {
			return taken, failed
		}
		p.mu.Lock()
		left := len(p.buf) + int(p.npending.Load())
		p.mu.Unlock()
		if left == 0 || (!all && left < p.maxBatch) {
			return taken, failed
		}
	}
}

func (p *batchProcessor) export(batch []sdklog.Record) error {
	if err := p.exportCtx.Err(); err != nil {
		p.dropped.Add(uint64(len(batch)))
		return err
	}
	ctx, cancel := context.WithTimeout(p.exportCtx, p.timeout)
	err := p.exp.Export(ctx, batch)
	cancel()
	if err != nil {
		p.failures.Add(1)
		p.dropped.Add(uint64(len(batch)))
		p.warnFailed(err, len(batch))
	}
	return err
}

// rateLimited reports whether a line may be written now, at most one per
// warnInterval per kind.
func rateLimited(last *atomic.Int64) bool {
	now := time.Now().UnixNano()
	prev := last.Load()
	if prev != 0 && now-prev < int64(warnInterval) {
		return true
	}
	return !last.CompareAndSwap(prev, now)
}

func (p *batchProcessor) warnFailed(err error, n int) {
	if rateLimited(&p.lastFail) {
		p.unloggedErr.Add(1)
		return
	}
	if l := p.logger.Load(); l != nil {
		l.WarnContext(lineOnly(context.Background()), "observe: logs export failed; log records dropped",
			slog.String("signal", "logs"),
			slog.String("error", err.Error()),
			slog.Int("records", n),
			slog.Uint64("failures_not_logged", p.unloggedErr.Swap(0)),
			slog.Uint64("logs_dropped_total", p.dropped.Load()),
		)
	}
}

func (p *batchProcessor) warnDropped() {
	if rateLimited(&p.lastDrop) {
		return
	}
	if l := p.logger.Load(); l != nil {
		l.WarnContext(lineOnly(context.Background()), "observe: log records dropped: the export queue is full",
			slog.Int("queue_size", p.maxQueue),
			slog.Uint64("logs_dropped_total", p.dropped.Load()),
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
