package logging

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
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

	mu     sync.Mutex // guards buf and closed
	buf    []byte
	closed bool // after Close every line is written at once

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// newBatchWriter starts the background writer; Close stops it.
func newBatchWriter(w io.Writer, interval time.Duration) *batchWriter {
	if interval <= 0 {
		interval = defaultFlushInterval
	}
	b := &batchWriter{
		w:     w,
		limit: bufferLimit,
		buf:   make([]byte, 0, 4<<10),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
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

// write adds one line. A line at WARN or above, or one that fills the
// buffer, is flushed before write returns, with everything before it.
func (b *batchWriter) write(line []byte, level slog.Level) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return b.writeNow(line)
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
	b.mu.Lock()
	out := b.buf
	b.buf = b.spare[:0]
	b.mu.Unlock()
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
	b.mu.Lock()
	b.closed = true
	out := b.buf
	b.buf = nil
	b.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	return writeRecovered(b.w, out)
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
