package logging

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

func tid(i int) trace.TraceID {
	var t trace.TraceID
	t[0], t[1], t[15] = byte(i>>8), byte(i), 1
	return t
}

func spanCtx(t trace.TraceID) context.Context {
	return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: t, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled,
	}))
}

func TestLineRingKeepsLinesOfATraceAsWritten(t *testing.T) {
	var out bytes.Buffer
	ring := NewLineRing(1<<16, 100)
	o := observeOptions()
	o.Writer, o.Ring = &out, ring
	l := slog.New(New(o))
	l.InfoContext(spanCtx(tid(1)), "first", "password", "hunter2")
	l.InfoContext(spanCtx(tid(2)), "other trace")
	l.Info("no trace")
	l.WarnContext(spanCtx(tid(1)), "second")

	got := ring.Lines(tid(1))
	written := bytes.SplitAfter(out.Bytes(), []byte("\n"))
	if len(got) != 2 || !bytes.Equal(got[0], written[0]) || !bytes.Equal(got[1], written[3]) {
		t.Fatalf("lines of trace 1:\n%q\nwritten:\n%q", got, written)
	}
	if bytes.Contains(got[0], []byte("hunter2")) {
		t.Fatalf("the ring kept an unredacted line: %s", got[0])
	}
	if n := len(ring.Lines(tid(3))); n != 0 {
		t.Fatalf("unknown trace: %d lines", n)
	}
	if st := ring.Stats(); st.Lines != 3 || st.Traces != 2 || st.Evicted != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// The ring against a model: every line still held is returned for its
// trace, in order, whatever the wraps; what is evicted is counted; the
// bounds hold.
func TestLineRingBoundsAndEvictionMatchAModel(t *testing.T) {
	for _, tc := range []struct{ bytes, lines int }{{4096, 1000}, {1 << 20, 50}, {1000, 7}} {
		t.Run(fmt.Sprintf("%dB-%dlines", tc.bytes, tc.lines), func(t *testing.T) {
			r := NewLineRing(tc.bytes, tc.lines)
			type kept struct {
				tid  trace.TraceID
				line string
			}
			var all []kept
			for i := range 5000 {
				line := fmt.Sprintf("line %d %s\n", i, bytes.Repeat([]byte("x"), i%97))
				id := tid(i % 13)
				r.add(id, []byte(line))
				all = append(all, kept{id, line})
			}
			st := r.Stats()
			if st.Lines > tc.lines || st.Total != 5000 || st.Evicted != 5000-uint64(st.Lines) {
				t.Fatalf("stats %+v", st)
			}
			held := all[len(all)-st.Lines:]
			size := 0
			for _, k := range held {
				size += len(k.line)
			}
			if size > tc.bytes {
				t.Fatalf("%d bytes held over the bound %d", size, tc.bytes)
			}
			for i := range 13 {
				var want []string
				for _, k := range held {
					if k.tid == tid(i) {
						want = append(want, k.line)
					}
				}
				var got []string
				for _, l := range r.Lines(tid(i)) {
					got = append(got, string(l))
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("trace %d: got %d lines, want %d\n%q\n%q", i, len(got), len(want), got, want)
				}
			}
			// A trace whose lines are all gone leaves no index entry.
			if st.Traces > 13 {
				t.Fatalf("traces %d", st.Traces)
			}
		})
	}
}

func TestLineRingTooLongLineIsCountedNotKept(t *testing.T) {
	r := NewLineRing(1000, 10)
	r.add(tid(1), bytes.Repeat([]byte("y"), 251))
	if st := r.Stats(); st.TooLong != 1 || st.Lines != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// BenchmarkRing is the log call with and without the ring, side by side
// (the same 10-attribute line as BenchmarkTenAttrs, each in one of 1000
// traces, the ring wrapping and evicting), one write per line and buffered
// (the default for stdout).
func BenchmarkRing(b *testing.B) {
	run := func(b *testing.B, ring *LineRing, buffered bool) {
		o := observeOptions()
		o.Ring, o.Buffered = ring, buffered
		h := New(o)
		defer h.Close()
		l := slog.New(h)
		ctxs := make([]context.Context, 1000)
		for i := range ctxs {
			ctxs[i] = spanCtx(tid(i))
		}
		b.ReportAllocs()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		start := threadCPU()
		i := 0
		for b.Loop() {
			logTen(ctxs[i%len(ctxs)], l)
			i++
		}
		if cpu := threadCPU() - start; cpu > 0 {
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		}
	}
	b.Run("without", func(b *testing.B) { run(b, nil, false) })
	b.Run("with-ring", func(b *testing.B) { run(b, NewLineRing(0, 0), false) })
	b.Run("buffered-without", func(b *testing.B) { run(b, nil, true) })
	b.Run("buffered-with-ring", func(b *testing.B) { run(b, NewLineRing(0, 0), true) })
}

// BenchmarkRingAdd is what keeping one line costs on its own: a line of the
// size BenchmarkRing writes, in one of 1000 traces, into a default ring
// (wrapping, evicting). Set beside BenchmarkRing/without, it is the share of
// a log call the ring takes.
func BenchmarkRingAdd(b *testing.B) {
	line := append(bytes.Repeat([]byte("x"), 330), '\n')
	tids := make([]trace.TraceID, 1000)
	for i := range tids {
		tids[i] = tid(i)
	}
	r := NewLineRing(0, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.add(tids[i%len(tids)], line)
		i++
	}
}

// With buffered output the ring is fed when the buffer is flushed or the
// ring is read: a line is there as soon as its log call returns, in order
// with the trace's other lines, byte for byte as written, and across Close.
func TestLineRingWithBufferedOutput(t *testing.T) {
	w := &countingWriter{}
	ring := NewLineRing(1<<12, 100)
	o := observeOptions()
	o.Writer, o.Ring, o.Buffered, o.FlushInterval = w, ring, true, time.Hour
	h := New(o)
	l := slog.New(h)
	l.InfoContext(spanCtx(tid(1)), "first", "password", "hunter2")
	l.InfoContext(spanCtx(tid(2)), "other trace")
	l.Info("no trace")
	if got := ring.Lines(tid(1)); len(got) != 1 || !bytes.Contains(got[0], []byte(`"msg":"first"`)) || bytes.Contains(got[0], []byte("hunter2")) {
		t.Fatalf("before a flush: %q", got)
	}
	if w.String() != "" {
		t.Fatalf("reading the ring flushed the writer: %q", w.String())
	}
	l.InfoContext(spanCtx(tid(1)), "second", "pad", strings.Repeat("p", 2000)) // over a quarter of 4 KiB
	l.WarnContext(spanCtx(tid(1)), "third")                                    // flushes
	l.InfoContext(spanCtx(tid(1)), "fourth")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	l.InfoContext(spanCtx(tid(1)), "fifth") // after Close: written and kept at once
	written := bytes.SplitAfter([]byte(w.String()), []byte("\n"))
	var want [][]byte
	for _, line := range written {
		if bytes.Contains(line, []byte(tid(1).String())) && len(line) <= 1024 {
			want = append(want, line)
		}
	}
	got := ring.Lines(tid(1))
	if len(want) != 4 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("lines of trace 1:\n%q\nwant:\n%q", got, want)
	}
	if st := ring.Stats(); st.Lines != 5 || st.Traces != 2 || st.TooLong != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Buffered, with loggers, flushes and readers racing: each trace's lines in
// the ring are exactly its lines as written, in order.
func TestLineRingBufferedConcurrent(t *testing.T) {
	w := &countingWriter{}
	ring := NewLineRing(1<<22, 10000)
	o := observeOptions()
	o.Writer, o.Ring, o.Buffered, o.FlushInterval = w, ring, true, time.Millisecond
	h := New(o)
	l := slog.New(h)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			for g := range 4 {
				ring.Lines(tid(g))
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			ctx := spanCtx(tid(g))
			for i := range 500 {
				if i%100 == 99 {
					l.WarnContext(ctx, "line", "i", i)
				} else {
					l.InfoContext(ctx, "line", "i", i)
				}
			}
		})
	}
	wg.Wait()
	<-done
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	written := bytes.SplitAfter([]byte(w.String()), []byte("\n"))
	for g := range 4 {
		var want [][]byte
		for _, line := range written {
			if bytes.Contains(line, []byte(tid(g).String())) {
				want = append(want, line)
			}
		}
		got := ring.Lines(tid(g))
		if len(want) != 500 || len(got) != 500 {
			t.Fatalf("trace %d: %d lines kept, %d written", g, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) || !bytes.Contains(got[i], fmt.Appendf(nil, `"i":%d}`, i)) {
				t.Fatalf("trace %d line %d: kept %q, written %q", g, i, got[i], want[i])
			}
		}
	}
}

// stuckWriter blocks every Write until release is closed.
type stuckWriter struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *stuckWriter) Write(p []byte) (int, error) {
	s.once.Do(func() { close(s.entered) })
	<-s.release
	return len(p), nil
}

// A log writer stuck in Write (a stalled stdout pipe) holds up the log calls
// that flush, but never a reader of the ring: the status page still answers.
func TestLineRingReadableWhileWriterIsStuck(t *testing.T) {
	w := &stuckWriter{entered: make(chan struct{}), release: make(chan struct{})}
	ring := NewLineRing(1<<16, 100)
	o := observeOptions()
	o.Writer, o.Ring, o.Buffered, o.FlushInterval = w, ring, true, time.Hour
	h := New(o)
	l := slog.New(h)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.WarnContext(spanCtx(tid(1)), "flushes and sticks")
	}()
	<-w.entered
	l.InfoContext(spanCtx(tid(1)), "buffered behind it")
	got := make(chan [][]byte)
	go func() { got <- ring.Lines(tid(1)) }()
	select {
	case lines := <-got:
		if len(lines) != 2 {
			t.Fatalf("lines %q", lines)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lines blocked behind a stuck writer")
	}
	close(w.release)
	<-done
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}
