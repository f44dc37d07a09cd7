package logging

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"testing"

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
// traces so the index is added to and evicted from).
func BenchmarkRing(b *testing.B) {
	run := func(b *testing.B, ring *LineRing) {
		o := observeOptions()
		o.Ring = ring
		l := slog.New(New(o))
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
	b.Run("without", func(b *testing.B) { run(b, nil) })
	b.Run("with-ring", func(b *testing.B) { run(b, NewLineRing(0, 0)) })
}
