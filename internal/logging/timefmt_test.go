package logging

import (
	"math/rand/v2"
	"testing"
	"time"
)

// appendLineTime against the standard library, over second boundaries,
// fractions with trailing zeros, whole seconds and years the cache leaves
// to AppendFormat.
func TestAppendLineTime(t *testing.T) {
	base := time.Date(2026, 12, 6, 23, 59, 59, 0, time.FixedZone("X", 3600))
	times := []time.Time{base, base.Add(time.Nanosecond), base.Add(time.Millisecond), base.Add(999999999), base.Add(time.Second),
		time.Date(999, 1, 1, 0, 0, 0, 5, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, time.Now()}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		times = append(times, base.Add(time.Duration(r.Int64N(int64(72*time.Hour)))-36*time.Hour).Round(time.Duration(r.IntN(4))*time.Microsecond))
	}
	for _, tm := range times {
		want := tm.UTC().AppendFormat(nil, time.RFC3339Nano)
		if got := appendLineTime([]byte("x"), tm); string(got[1:]) != string(want) || got[0] != 'x' {
			t.Fatalf("%v: got %s, want %s", tm, got[1:], want)
		}
	}
}

func BenchmarkAppendLineTime(b *testing.B) {
	buf := make([]byte, 0, 64)
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			buf = appendLineTime(buf[:0], time.Now())
		}
	})
	b.Run("AppendFormat", func(b *testing.B) {
		for b.Loop() {
			buf = time.Now().UTC().AppendFormat(buf[:0], time.RFC3339Nano)
		}
	})
}
