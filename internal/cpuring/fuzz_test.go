package cpuring

import (
	"bytes"
	"compress/gzip"
	"context"
	"runtime/pprof"
	"testing"
	"time"
)

// FuzzForSpans: whatever bytes end up in the ring, cutting and summarizing
// a trace's profile never panics.
func FuzzForSpans(f *testing.F) {
	var real bytes.Buffer
	if err := pprof.StartCPUProfile(&real); err == nil {
		pprof.Do(context.Background(), pprof.Labels(SpanLabel, "aaaaaaaaaaaaaaaa"), func(context.Context) { spin(50 * time.Millisecond) })
		pprof.StopCPUProfile()
		f.Add(real.Bytes())
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte{0x0a, 0x04, 0x08, 0x01, 0x10, 0x02})
	_ = zw.Close()
	f.Add(gz.Bytes())
	f.Add([]byte{})
	f.Add([]byte("not a profile"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := New(4, 1<<20)
		now := time.Now()
		r.Add(now, now.Add(time.Second), data)
		cut, err := r.ForSpans(map[string]bool{"aaaaaaaaaaaaaaaa": true}, now, now.Add(time.Second))
		if err != nil && cut.Profile != nil {
			t.Fatalf("error %v with a profile", err)
		}
		_ = Summarize(cut.Profile)
	})
}
