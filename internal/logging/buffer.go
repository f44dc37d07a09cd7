package logging

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// defaultFlushInterval is how often buffered lines are written when nothing
// else flushes them first.
const defaultFlushInterval = 100 * time.Millisecond

// bufferLimit is the size at which the buffer is flushed by the caller that
// fills it: a burst waits for the write (backpressure) instead of growing
// memory or dropping lines. The buffer holds at most this plus one line.
const bufferLimit = 64 << 10

// batchWriter collects lines in memory and writes them in batches: one
// write(2) per interval or per full buffer instead of one per line.
//
// Ordering: lines reach w in the order they were added. Two locks keep it:
// mu guards buf, and wmu is held for the whole of a flush (swap and write),
// so flushes, whoever runs them, write one after the other. A WARN or
// ERROR line, a full buffer and Close flush synchronously: when they
// return, the line and everything before it has been written.
//
// What a hard crash loses: lines added since the last flush, at most one
// interval of DEBUG and INFO lines (WARN and ERROR are never held).
type batchWriter struct {
	w     io.Writer
	limit int

	wmu   sync.Mutex // held while flushing; orders the writes
	spare []byte     // the other half of the double buffer; under wmu

	mu     sync.Mutex // guards buf, marks and closed
	buf    []byte
	closed bool // after Close every line is written at once

	// The status page's ring, when there is one: the lines of buf that
	// carry a trace ID are marked, and copied into the ring in one batch
	// (one lock) when buf is flushed or the ring is read, off the log call.
	ring       *LineRing
	rmu        sync.Mutex // held from a batch's swap until its lines are in the ring: keeps them in order
	marks      []ringMark
	spareMarks []ringMark // under wmu

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// newBatchWriter starts the background writer; Close stops it.
func newBatchWriter(w io.Writer, interval time.Duration, ring *LineRing) *batchWriter {
	if interval <= 0 {
		interval = defaultFlushInterval
	}
	b := &batchWriter{
		w:     w,
		limit: bufferLimit,
		buf:   make([]byte, 0, 4<<10),
		ring:  ring,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if ring != nil {
		ring.addSource(b.keepMarked)
	}
	go b.run(interval)
	return b
}

func (b *batchWriter) run(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			_ = b.flush() // an error here has no caller to go to; the next line's write may report it
		}
	}
}

// ringMark is a line of buf to keep in the ring.
type ringMark struct {
	tid      trace.TraceID
	off, end int
}

// write adds one line. A line at WARN or above, or one that fills the
// buffer, is flushed before write returns, with everything before it. A
// valid tid marks the line for the ring.
func (b *batchWriter) write(line []byte, level slog.Level, sc trace.SpanContext) error {
	keep := b.ring != nil && sc.IsValid()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		if keep {
			b.ring.add(sc.TraceID(), line)
		}
		return b.writeNow(line)
	}
	if keep {
		b.marks = append(b.marks, ringMark{tid: sc.TraceID(), off: len(b.buf), end: len(b.buf) + len(line)})
	}
	b.buf = append(b.buf, line...)
	full := len(b.buf) >= b.limit
	b.mu.Unlock()
	if level >= slog.LevelWarn || full {
		return b.flush()
	}
	return nil
}

// writeNow writes one line after Close, in order with any flush still
// running.
func (b *batchWriter) writeNow(line []byte) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	return writeRecovered(b.w, line)
}

// flush writes what is buffered. It swaps the buffer under mu and writes
// outside it, so loggers keep appending while the write runs.
func (b *batchWriter) flush() error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.rmu.Lock()
	b.mu.Lock()
	out, marks := b.buf, b.marks
	b.buf, b.marks = b.spare[:0], b.spareMarks[:0]
	b.mu.Unlock()
	// The ring gets the batch's lines outside mu (loggers go on adding)
	// and under rmu, which keeps them in order with the lines a reader
	// copies in; not under the write, so a stuck writer never stalls a
	// reader of the ring.
	if len(marks) > 0 {
		b.ring.addMarked(out, marks)
		clear(marks)
	}
	b.rmu.Unlock()
	b.spareMarks = marks[:0]
	if len(out) == 0 {
		b.spare = out
		return nil
	}
	err := writeRecovered(b.w, out)
	if cap(out) > 4*b.limit {
		out = nil // one huge line: do not keep its memory
	}
	b.spare = out[:0]
	return err
}

// Close flushes, stops the background writer and switches to one write per
// line. It is idempotent.
func (b *batchWriter) Close() error {
	b.once.Do(func() {
		close(b.stop)
		<-b.done
	})
	// Hold wmu while switching: a line written at once after the switch
	// must not overtake the lines still buffered.
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.rmu.Lock()
	b.mu.Lock()
	b.keepMarkedLocked()
	b.closed = true
	out := b.buf
	b.buf = nil
	b.mu.Unlock()
	b.rmu.Unlock()
	if len(out) == 0 {
		return nil
	}
	return writeRecovered(b.w, out)
}

// keepMarked copies the marked lines into the ring: before the ring is
// read, so that it shows every line logged so far. It waits for a batch
// being copied in (rmu), which is older, but not for a write.
func (b *batchWriter) keepMarked() {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	b.mu.Lock()
	b.keepMarkedLocked()
	b.mu.Unlock()
}

// keepMarkedLocked copies the marked lines still in buf into the ring,
// under rmu and mu.
func (b *batchWriter) keepMarkedLocked() {
	if len(b.marks) == 0 {
		return
	}
	b.ring.addMarked(b.buf, b.marks)
	clear(b.marks)
	b.marks = b.marks[:0]
}

// writeRecovered writes p to w. A Writer that panics (it is the program's)
// loses the bytes and the panic is returned as an error.
func writeRecovered(w io.Writer, p []byte) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("logging: the log writer panicked: %v", v)
		}
	}()
	_, err = w.Write(p)
	return err
}
