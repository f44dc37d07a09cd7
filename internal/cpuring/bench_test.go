package cpuring

import (
	"bytes"
	"context"
	"fmt"
	"runtime/pprof"
	"testing"
	"time"
)

// BenchmarkForSpans is the cost of the profile of a trace: cutting one
// span's samples out of one second of CPU profile of 50 labelled spans,
// and summarizing them.
func BenchmarkForSpans(b *testing.B) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		b.Skip(err)
	}
	start := time.Now()
	for i := range 50 {
		pprof.Do(context.Background(), pprof.Labels(SpanLabel, fmt.Sprintf("%016x", i)), func(context.Context) {
			if i%2 == 0 {
				burnA(20 * time.Millisecond)
			} else {
				burnB(20 * time.Millisecond)
			}
		})
	}
	pprof.StopCPUProfile()
	end := time.Now()
	r := New(0, 0)
	r.Add(start, end, buf.Bytes())
	ids := map[string]bool{fmt.Sprintf("%016x", 10): true}
	for b.Loop() {
		cut, err := r.ForSpans(ids, start, end)
		if err != nil {
			b.Fatal(err)
		}
		_ = Summarize(cut.Profile)
	}
	b.ReportMetric(float64(buf.Len()), "profile-bytes")
}
