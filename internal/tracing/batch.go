package tracing

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/observekit/observe/internal/batch"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// batchProcessor is a bounded batching SpanProcessor on observe's export
// queue (internal/batch): OnEnd never blocks, a full queue drops the span and
// counts it, failed exports are counted and retried with a backoff, and
// Shutdown returns by its deadline. It also redacts spans on the way out, in
// the queue's goroutine, so the request path pays for neither.
type batchProcessor struct {
	exp      sdktrace.SpanExporter
	redactor Redactor
	logger   *slog.Logger
	q        *batch.Queue[sdktrace.ReadOnlySpan]
	scratch  []sdktrace.ReadOnlySpan // the queue's goroutine's: redacted batch
	warn     batch.Limiter
	stopOnce sync.Once
	stopErr  error
}

// failureLogInterval bounds the WARN lines about failed exports to one per
// interval.
const failureLogInterval = 30 * time.Second

func newBatchProcessor(exp sdktrace.SpanExporter, c BatchConfig, r Redactor, logger *slog.Logger) *batchProcessor {
	if c.MaxQueueSize <= 0 {
		c.MaxQueueSize = sdktrace.DefaultMaxQueueSize
	}
	if c.MaxExportBatchSize <= 0 {
		c.MaxExportBatchSize = sdktrace.DefaultMaxExportBatchSize
	}
	p := &batchProcessor{exp: exp, redactor: r, logger: logger}
	p.q = batch.New(batch.Config{
		MaxQueue: c.MaxQueueSize,
		MaxBatch: c.MaxExportBatchSize,
		Delay:    c.ScheduleDelay,
		Timeout:  c.ExportTimeout,
	}, batch.Hooks[sdktrace.ReadOnlySpan]{
		Export: p.export,
		Failed: p.logFailure,
	})
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
	p.q.Add(s)
}

// ForceFlush exports every span queued before the call, by ctx's deadline.
func (p *batchProcessor) ForceFlush(ctx context.Context) error { return p.q.ForceFlush(ctx) }

// Shutdown exports what is queued and stops the worker and the exporter, by
// ctx's deadline. It is idempotent; later calls return the first's result.
func (p *batchProcessor) Shutdown(ctx context.Context) error {
	p.stopOnce.Do(func() {
		p.stopErr = p.q.Shutdown(ctx)
		if err := p.exp.Shutdown(ctx); err != nil && p.stopErr == nil {
			p.stopErr = err
		}
	})
	return p.stopErr
}

func (p *batchProcessor) export(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	// Redact here, off the request path. redactSpan returns the span itself
	// when nothing needs scrubbing.
	p.scratch = p.scratch[:0]
	for _, s := range spans {
		p.scratch = append(p.scratch, redactSpan(p.redactor, s))
	}
	err := p.exp.ExportSpans(ctx, p.scratch)
	clear(p.scratch)
	return err
}

// logFailure logs at most one line per failureLogInterval, saying how many
// failures it did not log: an unreachable backend must not flood the logs.
func (p *batchProcessor) logFailure(err error, n int) {
	ok, unlogged := p.warn.Allow(failureLogInterval)
	if !ok {
		return
	}
	l := p.logger
	if l == nil {
		l = slog.Default()
	}
	l.Warn("observe: span export failed; spans dropped",
		slog.String("error", err.Error()),
		slog.Int("spans", n),
		slog.Uint64("failures_not_logged", unlogged),
		slog.Uint64("spans_dropped_total", p.q.Dropped()),
	)
}
