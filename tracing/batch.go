package tracing

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// batchProcessor is a bounded batching SpanProcessor. It does what the SDK's
// BatchSpanProcessor does, plus what that one does not expose: it counts the
// spans it drops and the exports that fail, and it redacts spans on the way
// out, in its own goroutine, so the request path pays for neither.
//
// OnEnd never blocks: it appends to a bounded buffer under a short lock, and
// a full buffer drops the span and counts it. The worker wakes when a batch
// is full or the schedule delay has passed, not for every span (a channel
// send per span would wake it per span).
type batchProcessor struct {
	exp      sdktrace.SpanExporter
	redactor Redactor
	logger   *slog.Logger

	mu       sync.Mutex
	buf      []sdktrace.ReadOnlySpan // at most maxQueue
	maxQueue int
	maxBatch int
	full     chan struct{} // a batch is ready (capacity 1)
	delay    time.Duration
	timeout  time.Duration

	flushCh  chan chan struct{}
	stopCh   chan struct{}
	done     chan struct{}
	stopping atomic.Bool
	stopOnce sync.Once
	stopErr  error
	// exportCtx parents every export; Shutdown cancels it when its own
	// deadline passes so the worker cannot outlive Shutdown by an export
	// timeout.
	exportCtx    context.Context
	cancelExport context.CancelFunc

	dropped  atomic.Uint64
	failures atomic.Uint64
	exported atomic.Uint64

	lastLog       atomic.Int64 // unix nanos of the last failure log line
	unloggedFails atomic.Uint64
}

const failureLogInterval = 30 * time.Second

func newBatchProcessor(exp sdktrace.SpanExporter, c BatchConfig, r Redactor, logger *slog.Logger) *batchProcessor {
	if c.MaxQueueSize <= 0 {
		c.MaxQueueSize = sdktrace.DefaultMaxQueueSize
	}
	if c.MaxExportBatchSize <= 0 {
		c.MaxExportBatchSize = sdktrace.DefaultMaxExportBatchSize
	}
	if c.MaxExportBatchSize > c.MaxQueueSize {
		c.MaxExportBatchSize = c.MaxQueueSize
	}
	if c.ScheduleDelay <= 0 {
		c.ScheduleDelay = time.Second
	}
	if c.ExportTimeout <= 0 {
		c.ExportTimeout = 30 * time.Second
	}
	p := &batchProcessor{
		exp:      exp,
		redactor: r,
		logger:   logger,
		buf:      make([]sdktrace.ReadOnlySpan, 0, min(c.MaxQueueSize, 4*c.MaxExportBatchSize)),
		maxQueue: c.MaxQueueSize,
		maxBatch: c.MaxExportBatchSize,
		full:     make(chan struct{}, 1),
		delay:    c.ScheduleDelay,
		timeout:  c.ExportTimeout,
		flushCh:  make(chan chan struct{}),
		stopCh:   make(chan struct{}),
		done:     make(chan struct{}),
	}
	p.exportCtx, p.cancelExport = context.WithCancel(context.Background())
	go p.run()
	return p
}

// OnStart implements sdktrace.SpanProcessor.
func (p *batchProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd implements sdktrace.SpanProcessor: it queues a sampled span, or
// drops and counts it when the queue is full or the processor stopped.
func (p *batchProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	if p.stopping.Load() {
		p.dropped.Add(1)
		return
	}
	p.mu.Lock()
	n := len(p.buf)
	if n >= p.maxQueue {
		p.mu.Unlock()
		p.dropped.Add(1)
		return
	}
	p.buf = append(p.buf, s)
	p.mu.Unlock()
	if n+1 == p.maxBatch {
		select {
		case p.full <- struct{}{}:
		default:
		}
	}
}

// ForceFlush exports every span queued before the call, by ctx's deadline.
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
// ctx's deadline. It is idempotent; later calls return the first's result.
func (p *batchProcessor) Shutdown(ctx context.Context) error {
	p.stopOnce.Do(func() {
		p.stopping.Store(true)
		close(p.stopCh)
		select {
		case <-p.done:
		case <-ctx.Done():
			// Abort the export in flight; the worker then returns promptly.
			p.cancelExport()
			<-p.done
			p.stopErr = ctx.Err()
		}
		p.cancelExport()
		// Spans that raced past the stopping check are dropped, and counted.
		p.mu.Lock()
		p.dropped.Add(uint64(len(p.buf)))
		clear(p.buf)
		p.buf = p.buf[:0]
		p.mu.Unlock()
		if err := p.exp.Shutdown(ctx); err != nil && p.stopErr == nil {
			p.stopErr = err
		}
	})
	return p.stopErr
}

func (p *batchProcessor) run() {
	defer close(p.done)
	var taken, scratch []sdktrace.ReadOnlySpan
	timer := time.NewTimer(p.delay)
	defer timer.Stop()
	var backoff time.Duration
	for {
		var ack chan struct{}
		full := p.full
		if backoff > 0 {
			// A failing backend is not retried batch after batch: that
			// burns the CPU the service needs. Spans queue meanwhile; a
			// full queue drops and counts them.
			full = nil
		}
		select {
		case <-full:
		case <-timer.C:
		case ack = <-p.flushCh:
		case <-p.stopCh:
			p.drain(taken, scratch, true)
			return
		}
		var failed bool
		taken, scratch, failed = p.drain(taken, scratch, ack != nil)
		if ack != nil {
			close(ack)
		}
		backoff = nextBackoff(backoff, failed)
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

// drain takes what is queued and exports it in batches, until fewer than a
// batch are left (all: until nothing is). The buffers are swapped, not
// copied: the one just exported becomes the next queue.
//
// Unless all, a failed export ends the drain: what was taken is dropped
// (counted), the rest waits for the backoff.
func (p *batchProcessor) drain(taken, scratch []sdktrace.ReadOnlySpan, all bool) ([]sdktrace.ReadOnlySpan, []sdktrace.ReadOnlySpan, bool) {
	failed := false
	for {
		p.mu.Lock()
		taken, p.buf = p.buf, taken[:0]
		p.mu.Unlock()
		if len(taken) == 0 {
			return taken, scratch, failed
		}
		for i := 0; i < len(taken); i += p.maxBatch {
			batch := taken[i:min(i+p.maxBatch, len(taken))]
			var err error
			scratch, err = p.export(batch, scratch)
			clear(batch)
			if err != nil {
				failed = true
				if !all {
					// Drop the rest of what was taken; exporting it now
					// would only fail again.
					rest := taken[min(i+p.maxBatch, len(taken)):]
					p.dropped.Add(uint64(len(rest)))
					clear(rest)
					break
				}
			}
		}
		taken = taken[:0]
		if failed && !all {
			return taken, scratch, failed
		}
		p.mu.Lock()
		left := len(p.buf)
		p.mu.Unlock()
		if left == 0 || (!all && left < p.maxBatch) {
			return taken, scratch, failed
		}
	}
}

func (p *batchProcessor) export(batch, scratch []sdktrace.ReadOnlySpan) ([]sdktrace.ReadOnlySpan, error) {
	// Redact here, off the request path. redactSpan returns the span itself
	// when nothing needs scrubbing.
	scratch = scratch[:0]
	for _, s := range batch {
		scratch = append(scratch, redactSpan(p.redactor, s))
	}
	ctx, cancel := context.WithTimeout(p.exportCtx, p.timeout)
	err := p.exp.ExportSpans(ctx, scratch)
	cancel()
	if err != nil {
		p.failures.Add(1)
		p.dropped.Add(uint64(len(batch)))
		p.logFailure(err, len(batch))
	} else {
		p.exported.Add(uint64(len(batch)))
	}
	clear(scratch)
	return scratch[:0], err
}

// logFailure logs at most one line per failureLogInterval, saying how many
// failures it did not log: an unreachable backend must not flood the logs.
func (p *batchProcessor) logFailure(err error, n int) {
	now := time.Now().UnixNano()
	last := p.lastLog.Load()
	if last != 0 && now-last < int64(failureLogInterval) {
		p.unloggedFails.Add(1)
		return
	}
	if !p.lastLog.CompareAndSwap(last, now) {
		p.unloggedFails.Add(1)
		return
	}
	l := p.logger
	if l == nil {
		l = slog.Default()
	}
	l.Warn("observe: span export failed; spans dropped",
		slog.String("error", err.Error()),
		slog.Int("spans", n),
		slog.Uint64("failures_not_logged", p.unloggedFails.Swap(0)),
		slog.Uint64("spans_dropped_total", p.dropped.Load()),
	)
}
