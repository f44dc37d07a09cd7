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
// OnEnd never blocks: a full queue drops the span and counts it.
type batchProcessor struct {
	exp      sdktrace.SpanExporter
	redactor Redactor
	logger   *slog.Logger

	queue    chan sdktrace.ReadOnlySpan
	maxBatch int
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
		queue:    make(chan sdktrace.ReadOnlySpan, c.MaxQueueSize),
		maxBatch: c.MaxExportBatchSize,
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
	select {
	case p.queue <- s:
	default:
		p.dropped.Add(1)
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
		// The worker is gone: nothing else receives from the queue.
		for len(p.queue) > 0 {
			<-p.queue
			p.dropped.Add(1)
		}
		if err := p.exp.Shutdown(ctx); err != nil && p.stopErr == nil {
			p.stopErr = err
		}
	})
	return p.stopErr
}

func (p *batchProcessor) run() {
	defer close(p.done)
	batch := make([]sdktrace.ReadOnlySpan, 0, p.maxBatch)
	var scratch []sdktrace.ReadOnlySpan
	timer := time.NewTimer(p.delay)
	defer timer.Stop()
	for {
		select {
		case s := <-p.queue:
			batch = append(batch, s)
			if len(batch) >= p.maxBatch {
				batch, scratch = p.export(batch, scratch)
				timer.Reset(p.delay)
			}
		case <-timer.C:
			batch, scratch = p.export(batch, scratch)
			timer.Reset(p.delay)
		case ack := <-p.flushCh:
			batch, scratch = p.drain(batch, scratch)
			close(ack)
		case <-p.stopCh:
			p.drain(batch, scratch)
			return
		}
	}
}

// drain exports the batch and everything queued now.
func (p *batchProcessor) drain(batch, scratch []sdktrace.ReadOnlySpan) ([]sdktrace.ReadOnlySpan, []sdktrace.ReadOnlySpan) {
	for n := len(p.queue); n > 0; n-- {
		batch = append(batch, <-p.queue)
		if len(batch) >= p.maxBatch {
			batch, scratch = p.export(batch, scratch)
		}
	}
	return p.export(batch, scratch)
}

func (p *batchProcessor) export(batch, scratch []sdktrace.ReadOnlySpan) ([]sdktrace.ReadOnlySpan, []sdktrace.ReadOnlySpan) {
	if len(batch) == 0 {
		return batch, scratch
	}
	// Redact here, off the request path. redactSpan returns the span itself
	// when nothing needs scrubbing.
	scratch = scratch[:0]
	for _, s := range batch {
		scratch = append(scratch, redactSpan(p.redactor, s))
	}
	out := scratch
	ctx, cancel := context.WithTimeout(p.exportCtx, p.timeout)
	err := p.exp.ExportSpans(ctx, out)
	cancel()
	if err != nil {
		p.failures.Add(1)
		p.dropped.Add(uint64(len(batch)))
		p.logFailure(err, len(batch))
	} else {
		p.exported.Add(uint64(len(batch)))
	}
	clear(batch)
	clear(scratch)
	return batch[:0], scratch[:0]
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
