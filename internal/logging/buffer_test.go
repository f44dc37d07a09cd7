package logging

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingWriter records what was written and how many Write calls did it.
type countingWriter struct {
	lineBuffer
	writes atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.lineBuffer.Write(p)
}

func bufferedLogger(t *testing.T, w *countingWriter, interval time.Duration) (*slog.Logger, *Handler) {
	t.Helper()
	h := New(Options{Writer: w, Buffered: true, FlushInterval: interval})
	t.Cleanup(func() { _ = h.Close() })
	return slog.New(h), h
}

func msgs(t *testing.T, w *countingWriter) []string {
	t.Helper()
	var out []string
	for _, r := range w.records(t) {
		out = append(out, r["msg"].(string))
	}
	return out
}

func TestBufferedInfoWaitsWarnFlushesInOrder(t *testing.T) {
	w := &countingWriter{}
	log, _ := bufferedLogger(t, w, time.Hour)
	log.Info("one")
	log.Debug("below the level")
	log.Info("two")
	if got := w.String(); got != "" {
		t.Fatalf("INFO lines written before a flush: %q", got)
	}
	log.Warn("three")
	if got := strings.Join(msgs(t, w), ","); got != "one,two,three" {
		t.Fatalf("after WARN: lines %q, want one,two,three", got)
	}
	if n := w.writes.Load(); n != 1 {
		t.Errorf("%d writes for three buffered lines, want 1", n)
	}
	log.Info("four")
	log.Error("five")
	if got := strings.Join(msgs(t, w), ","); got != "one,two,three,four,five" {
		t.Fatalf("after ERROR: lines %q", got)
	}
}

func TestBufferedFlushedByInterval(t *testing.T) {
	w := &countingWriter{}
	log, _ := bufferedLogger(t, w, 20*time.Millisecond)
	log.Info("soon")
	deadline := time.Now().Add(10 * time.Second)
	for w.String() == "" {
		if time.Now().After(deadline) {
			t.Fatal("an INFO line was not written by the background writer within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := strings.Join(msgs(t, w), ","); got != "soon" {
		t.Fatalf("lines %q", got)
	}
}

// A burst larger than the buffer is written by the callers that fill it
// (backpressure), in order, and nothing is dropped.
func TestBufferedFullBufferFlushesAtOnce(t *testing.T) {
	w := &countingWriter{}
	log, h := bufferedLogger(t, w, time.Hour)
	pad := strings.Repeat("x", 1000)
	n := 3 * bufferLimit / 1000
	for i := range n {
		log.Info("line", "i", i, "pad", pad)
	}
	before := len(w.lines())
	if before == 0 {
		t.Fatalf("%d lines of 1 KB logged, none written: the full buffer was not flushed", n)
	}
	if writes := w.writes.Load(); writes > 4 {
		t.Errorf("%d writes for %d lines: want about one per %d bytes", writes, n, bufferLimit)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	recs := w.records(t)
	if len(recs) != n {
		t.Fatalf("%d lines written after Close, want %d", len(recs), n)
	}
	for i, r := range recs {
		if r["i"].(json.Number).String() != strconv.Itoa(i) {
			t.Fatalf("line %d has i=%v: out of order", i, r["i"])
		}
	}
}

// Close writes what is buffered, stops the background writer (goleak in
// TestMain) and leaves later lines written one by one.
func TestBufferedCloseFlushesThenWritesThrough(t *testing.T) {
	w := &countingWriter{}
	log, h := bufferedLogger(t, w, time.Hour)
	named := slog.New(h.WithName("db").WithAttrs([]slog.Attr{slog.String("k", "v")}))
	log.Info("a")
	named.Info("b")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(msgs(t, w), ","); got != "a,b" {
		t.Fatalf("after Close: %q", got)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	named.Info("c")
	if got := strings.Join(msgs(t, w), ","); got != "a,b,c" {
		t.Fatalf("a line after Close was not written at once: %q", got)
	}
}

// Concurrent loggers with WARN lines among INFO: every line once, each
// goroutine's lines in its order, and every WARN visible when its call
// returns together with all of that goroutine's earlier lines.
func TestBufferedConcurrentOrder(t *testing.T) {
	w := &countingWriter{}
	log, h := bufferedLogger(t, w, time.Millisecond)
	const G, N = 8, 300
	var wg sync.WaitGroup
	errs := make(chan string, G)
	for g := range G {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range N {
				if i%50 == 49 {
					log.Warn("m", "g", g, "i", i)
					// Everything this goroutine logged so far is out.
					want := fmt.Sprintf(`"g":%d,"i":%d}`, g, i)
					if !strings.Contains(w.String(), want) {
						errs <- fmt.Sprintf("WARN g=%d i=%d not written when the call returned", g, i)
						return
					}
					continue
				}
				log.Info("m", "g", g, "i", i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	next := make([]int, G)
	for _, r := range w.records(t) {
		g, _ := strconv.Atoi(r["g"].(json.Number).String())
		i, _ := strconv.Atoi(r["i"].(json.Number).String())
		if i != next[g] {
			t.Fatalf("goroutine %d: line %d after line %d", g, i, next[g]-1)
		}
		next[g]++
	}
	for g, n := range next {
		if n != N {
			t.Errorf("goroutine %d: %d lines written, want %d", g, n, N)
		}
	}
}

// panicOnce panics on its first write.
type panicOnce struct {
	countingWriter
	panicked atomic.Bool
}

func (p *panicOnce) Write(b []byte) (int, error) {
	if p.panicked.CompareAndSwap(false, true) {
		panic("writer broke")
	}
	return p.countingWriter.Write(b)
}

// A writer that panics while flushing loses that batch, never the program,
// neither on the caller's flush nor on the background writer's.
func TestBufferedWriterPanicIsContained(t *testing.T) {
	for _, bg := range []bool{false, true} {
		t.Run(fmt.Sprintf("background=%v", bg), func(t *testing.T) {
			w := &panicOnce{}
			interval := time.Hour
			if bg {
				interval = time.Millisecond
			}
			h := New(Options{Writer: w, Buffered: true, FlushInterval: interval})
			defer h.Close()
			log := slog.New(h)
			if bg {
				log.Info("lost")
				for !w.panicked.Load() {
					time.Sleep(time.Millisecond)
				}
			} else {
				err := h.Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelError, "lost", 0))
				if err == nil || !strings.Contains(err.Error(), "panicked") {
					t.Fatalf("Handle after a writer panic: %v, want the panic as an error", err)
				}
			}
			log.Warn("kept")
			if got := strings.Join(msgs(t, &w.countingWriter), ","); got != "kept" {
				t.Fatalf("lines after the panic: %q", got)
			}
		})
	}
}
