package cpuring

import (
	"bytes"
	"context"
	"fmt"
	"github.com/observekit/observe/internal/testbackend"
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

// BenchmarkCollectorOverhead is continuous CPU profiling's own cost:
// fixed computation with the collector off and on (100 samples per
// CPU-second, a profile cut every 10 s), as process CPU time per op.
func BenchmarkCollectorOverhead(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			if on {
				c, err := StartCollector(New(0, 0), DefaultPeriod, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Stop(context.Background())
			}
			cpu0 := testbackend.ProcessCPU()
			for b.Loop() {
				work(200_000)
			}
			b.ReportMetric(float64(testbackend.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

//go:noinline
func work(n int) uint64 {
	var x uint64 = 1
	for i := range n {
		x = x*6364136223846793005 + uint64(i)
	}
	return x
}
