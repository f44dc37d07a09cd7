// Package batch is the bounded batching queue behind observe's span and log
// export. It does what the SDKs' batch processors do, plus what they do not
// expose or do:
//
//   - Add never blocks: it appends under a short lock, and a full queue
//     drops the item and counts it;
//   - the worker wakes when a batch is full or the delay has passed, not per
//     item (a channel send per item would wake it per item);
//   - exports that fail are counted, and a failing backend is retried with a
//     backoff (250ms doubling to 5s) instead of batch after batch, which
//     burns the CPU the service needs; items queue meanwhile, and a full
//     queue drops and counts them;
//   - every item is accounted for: exported, or dropped and counted (an
//     Add racing Shutdown included);
//   - a drain exports what is held when it starts, and goes on only while
//     a whole batch has piled up meanwhile (a few rounds at most), so a
//     steady trickle neither turns batches into single items nor keeps the
//     worker from a ForceFlush;
//   - Shutdown returns by its deadline: past it, the export in flight is
//     cancelled, and what is left is dropped and counted; an exporter that
//     ignores its context does not hold Shutdown (the worker ends when the
//     export returns).
package batch

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Config sizes a Queue. Zero fields take the defaults.
type Config struct {
	MaxQueue int           // items held at most, queued or being exported (default 2048)
	MaxBatch int           // items per export at most (default 512, at most MaxQueue)
	Delay    time.Duration // the longest an item waits for a batch to fill (default 1s)
	Timeout  time.Duration // per export (default 30s)
}

// Hooks are what a Queue calls. Export is required.
type Hooks[T any] struct {
	// Export sends one batch. ctx ends at the export timeout, or when
	// Shutdown's deadline passes. The batch is not kept.
	Export func(ctx context.Context, batch []T) error
	// Prepare, if set, runs on the worker before it takes the queue: for
	// items handed over in another form, converted and Added there.
	Prepare func()
	// Pending, if set, says how many items wait for Prepare, so that the
	// worker drains them too.
	Pending func() int
	// Failed, if set, is told of each failed export (already counted).
	Failed func(err error, n int)
	// QueueFull, if set, is told of each item dropped for a full queue
	// (already counted).
	QueueFull func()
}

// Defaults of Config.
const (
	DefaultMaxQueue = 2048
	DefaultMaxBatch = 512
)

// Export retry pacing after failures: doubling from minBackoff to
// maxBackoff, back to none after a success.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// abandonGrace is how long Shutdown, past its deadline, waits for the export
// in flight to return after cancelling it.
const abandonGrace = 50 * time.Millisecond

// Queue is a bounded batching queue with its worker goroutine, started by
// New and ended by Shutdown.
type Queue[T any] struct {
	c Config
	h Hooks[T]

	mu   sync.Mutex
	buf  []T
	n    atomic.Int64  // len(buf)
	full chan struct{} // a batch is ready (capacity 1)
	// inflight: items the worker has taken and not yet exported, which
	// count against MaxQueue with the queued ones.
	inflight atomic.Int64

	flushCh  chan chan struct{}
	stopCh   chan struct{}
	done     chan struct{}
	stopping atomic.Bool
	stopOnce sync.Once
	stopErr  error
	// exportCtx parents every export; Shutdown cancels it when its own
	// deadline passes, so the worker cannot outlive Shutdown by a timeout.
	exportCtx    context.Context
	cancelExport context.CancelFunc

	dropped  atomic.Uint64
	failures atomic.Uint64
	exported atomic.Uint64
}

// New starts a queue.
func New[T any](c Config, h Hooks[T]) *Queue[T] {
	if c.MaxQueue <= 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	c.MaxBatch = min(c.MaxBatch, c.MaxQueue)
	if c.Delay <= 0 {
		c.Delay = time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	q := &Queue[T]{
		c:       c,
		h:       h,
		buf:     make([]T, 0, min(c.MaxQueue, 4*c.MaxBatch)),
		full:    make(chan struct{}, 1),
		flushCh: make(chan chan struct{}),
		stopCh:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	q.exportCtx, q.cancelExport = context.WithCancel(context.Background())
	go q.run()
	return q
}

// Config returns the queue's sizes, defaults applied.
func (q *Queue[T]) Config() Config { return q.c }

// Add queues v, or drops and counts it (and returns false) when the queue
// is full or stopping.
func (q *Queue[T]) Add(v T) bool {
	if q.stopping.Load() {
		q.dropped.Add(1)
		return false
	}
	q.mu.Lock()
	// Again under the lock: an Add that took it after Shutdown counted
	// what was left would otherwise leave its item behind uncounted.
	if q.stopping.Load() {
		q.mu.Unlock()
		q.dropped.Add(1)
		return false
	}
	n := len(q.buf)
	if n+int(q.inflight.Load()) >= q.c.MaxQueue {
		q.mu.Unlock()
		q.dropped.Add(1)
		if q.h.QueueFull != nil {
			q.h.QueueFull()
		}
		return false
	}
	q.buf = append(q.buf, v)
	q.n.Store(int64(n + 1))
	q.mu.Unlock()
	if n+1 >= q.c.MaxBatch {
		q.Wake()
	}
	return true
}

// Len returns how many items are held: queued, or taken by the worker and
// not exported yet.
func (q *Queue[T]) Len() int { return int(q.n.Load() + q.inflight.Load()) }

// Wake tells the worker a batch is ready.
func (q *Queue[T]) Wake() {
	select {
	case q.full <- struct{}{}:
	default:
	}
}

// Stopping reports whether Shutdown has begun.
func (q *Queue[T]) Stopping() bool { return q.stopping.Load() }

// Drop counts n items dropped before they reached the queue.
func (q *Queue[T]) Drop(n int) { q.dropped.Add(uint64(n)) }

// Dropped returns how many items were dropped: the queue was full, the
// queue was stopping, their export failed, or Drop said so.
func (q *Queue[T]) Dropped() uint64 { return q.dropped.Load() }

// Failures returns how many exports failed.
func (q *Queue[T]) Failures() uint64 { return q.failures.Load() }

// Exported returns how many items were exported.
func (q *Queue[T]) Exported() uint64 { return q.exported.Load() }

// ForceFlush exports every item queued before the call, by ctx's deadline.
func (q *Queue[T]) ForceFlush(ctx context.Context) error {
	if q.stopping.Load() {
		return nil
	}
	ack := make(chan struct{})
	select {
	case q.flushCh <- ack:
	case <-q.done:
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

// Shutdown exports what is queued and stops the worker, by ctx's deadline;
// past it, the export in flight is cancelled and ctx's error returned. What
// could not be exported is dropped and counted. It is idempotent: later calls
// return the first's result. The exporter itself is the caller's to shut down.
func (q *Queue[T]) Shutdown(ctx context.Context) error {
	q.stopOnce.Do(func() {
		q.stopping.Store(true)
		close(q.stopCh)
		select {
		case <-q.done:
		case <-ctx.Done():
			q.cancelExport()
			q.stopErr = ctx.Err()
			// An exporter that honours its context returns at once; one
			// that ignores it must not hold Shutdown (and the process's
			// exit) hostage: the worker is left to end when it returns,
			// dropping and counting whatever it still holds.
			t := time.NewTimer(abandonGrace)
			select {
			case <-q.done:
			case <-t.C:
			}
			t.Stop()
		}
		q.cancelExport()
		// Items that raced past the stopping check are counted.
		q.mu.Lock()
		q.dropped.Add(uint64(len(q.buf)))
		clear(q.buf)
		q.buf = q.buf[:0]
		q.n.Store(0)
		q.mu.Unlock()
	})
	return q.stopErr
}

func (q *Queue[T]) run() {
	defer close(q.done)
	var taken []T
	timer := time.NewTimer(q.c.Delay)
	defer timer.Stop()
	var backoff time.Duration
	for {
		full := q.full
		if backoff > 0 {
			full = nil // a failing backend waits for the timer
		}
		var ack chan struct{}
		select {
		case <-q.stopCh:
			q.drainAll(taken)
			return
		case ack = <-q.flushCh:
		case <-full:
		case <-timer.C:
		}
		var failed bool
		taken, failed = q.drain(taken, ack == nil)
		if ack != nil {
			close(ack)
		}
		backoff = nextBackoff(backoff, failed)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(q.c.Delay, backoff))
	}
}

// nextBackoff is the wait before the next export after one that failed
// (or not).
func nextBackoff(cur time.Duration, failed bool) time.Duration {
	if !failed {
		return 0
	}
	if cur == 0 {
		return minBackoff
	}
	return min(2*cur, maxBackoff)
}

// maxRounds bounds the rounds of one drain, so that a steady flow of items
// cannot keep the worker from its flush requests and timer.
const maxRounds = 4

// drain exports what is held (items handed over through Prepare included)
// in batches: everything there when it starts, then, while at least a batch
// has piled up meanwhile, more rounds (up to maxRounds). The buffers are
// swapped, not copied. With stopOnFail, a failed export ends the drain and
// drops (counting) the rest of what was taken: exporting it now would only
// fail again. A ForceFlush's drain (stopOnFail false) takes one round: what
// was queued before the call.
func (q *Queue[T]) drain(taken []T, stopOnFail bool) ([]T, bool) {
	failed := false
	for round := 0; round < maxRounds; round++ {
		var ok bool
		taken, ok = q.round(taken, stopOnFail)
		if !ok {
			failed = true
		}
		if !stopOnFail || failed || q.held() < q.c.MaxBatch {
			break
		}
	}
	return taken, failed
}

// drainAll exports everything, at Shutdown: Add refuses items by then, so it
// ends.
func (q *Queue[T]) drainAll(taken []T) {
	for {
		taken, _ = q.round(taken, false)
		if q.held() == 0 {
			return
		}
	}
}

// held is what waits for export: queued, or to be handed over by Prepare.
func (q *Queue[T]) held() int {
	n := int(q.n.Load())
	if q.h.Pending != nil {
		n += q.h.Pending()
	}
	return n
}

// round takes what is queued (after Prepare) and exports it in batches;
// ok is false when an export failed.
func (q *Queue[T]) round(taken []T, stopOnFail bool) ([]T, bool) {
	if q.h.Prepare != nil {
		q.h.Prepare()
	}
	q.mu.Lock()
	// inflight before n: a reader of Len in between sees the items twice,
	// never not at all.
	q.inflight.Store(int64(len(q.buf)))
	taken, q.buf = q.buf, taken[:0]
	q.n.Store(0)
	q.mu.Unlock()
	ok := true
	for i := 0; i < len(taken); i += q.c.MaxBatch {
		end := min(i+q.c.MaxBatch, len(taken))
		err := q.export(taken[i:end])
		q.inflight.Add(int64(i - end))
		if err != nil {
			ok = false
			if stopOnFail {
				q.dropped.Add(uint64(len(taken) - end))
				break
			}
		}
	}
	q.inflight.Store(0)
	clear(taken)
	return taken[:0], ok
}

func (q *Queue[T]) export(batch []T) error {
	if err := q.exportCtx.Err(); err != nil {
		q.dropped.Add(uint64(len(batch)))
		return err
	}
	ctx, cancel := context.WithTimeout(q.exportCtx, q.c.Timeout)
	err := q.h.Export(ctx, batch)
	cancel()
	if err != nil {
		q.failures.Add(1)
		q.dropped.Add(uint64(len(batch)))
		if q.h.Failed != nil {
			q.h.Failed(err, len(batch))
		}
		return err
	}
	q.exported.Add(uint64(len(batch)))
	return nil
}

// Limiter lets through at most one event per interval: for the WARN lines
// about failed exports and drops, which an unreachable backend must not turn
// into a flood. The zero value is ready.
type Limiter struct {
	last       atomic.Int64  // unix nanos of the last event let through
	suppressed atomic.Uint64 // events held back since
}

// Allow reports whether an event may go now; when it may, suppressed is how
// many were held back since the last one.
func (l *Limiter) Allow(interval time.Duration) (ok bool, suppressed uint64) {
	now := time.Now().UnixNano()
	prev := l.last.Load()
	if prev != 0 && now-prev < int64(interval) || !l.last.CompareAndSwap(prev, now) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
