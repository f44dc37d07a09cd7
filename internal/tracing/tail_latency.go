package tracing

import (
	"math"
	"math/bits"
	"time"
)

// latencyHist holds the recent durations of one span name's local roots in
// log-linear buckets (16 per power of two: at most 6.25% wide), over two
// generations of latGen observations, so a quantile covers the last latGen
// to 2*latGen. Adding is O(1); the quantile is recomputed every
// latRecompute additions. It is guarded by its TailSampler's mutex.
type latencyHist struct {
	gen    [2][latBuckets]uint16
	n      [2]int
	cur    int
	thresh time.Duration // cached quantile; 0: not enough data
	q      float64       // quantile thresh was computed for
	stale  int           // additions since thresh was computed
}

const (
	latSubBits   = 4
	latSub       = 1 << latSubBits // sub-buckets per power of two
	latMinExp    = 10              // 2^10 ns ≈ 1 µs: faster roots share the first bucket
	latMaxExp    = 37              // 2^38 ns ≈ 275 s: slower roots share the last bucket
	latBuckets   = (latMaxExp - latMinExp + 1) * latSub
	latGen       = 1024
	latMinCount  = 100
	latRecompute = 32
)

func latBucket(d time.Duration) int {
	if d < 1<<latMinExp {
		return 0
	}
	e := bits.Len64(uint64(d)) - 1 // d in [2^e, 2^(e+1))
	if e > latMaxExp {
		return latBuckets - 1
	}
	sub := int(uint64(d)>>(e-latSubBits)) & (latSub - 1)
	return (e-latMinExp)*latSub + sub
}

// latUpper is the exclusive upper bound of bucket i.
func latUpper(i int) time.Duration {
	if i == latBuckets-1 {
		return math.MaxInt64
	}
	e := i/latSub + latMinExp
	sub := i % latSub
	w := time.Duration(1) << (e - latSubBits)
	return time.Duration(1)<<e + time.Duration(sub+1)*w
}

func (h *latencyHist) add(d time.Duration) {
	b := latBucket(d)
	h.gen[h.cur][b]++
	h.n[h.cur]++
	if h.n[h.cur] == latGen {
		h.cur ^= 1
		h.gen[h.cur] = [latBuckets]uint16{}
		h.n[h.cur] = 0
	}
	h.stale++
}

// threshold returns the upper bound of the bucket holding quantile q of the
// recent durations (so a duration above it is above the quantile), or 0
// while fewer than latMinCount were seen.
func (h *latencyHist) threshold(q float64) time.Duration {
	if h.stale < latRecompute && h.q == q && h.thresh > 0 {
		return h.thresh
	}
	total := h.n[0] + h.n[1]
	if total < latMinCount {
		return 0
	}
	// rank (1-based, ascending) of the quantile; count from the top.
	rank := int(math.Ceil(q * float64(total)))
	above := total - rank + 1
	seen := 0
	b := latBuckets - 1
	for ; b > 0; b-- {
		seen += int(h.gen[0][b]) + int(h.gen[1][b])
		if seen >= above {
			break
		}
	}
	h.thresh, h.q, h.stale = latUpper(b), q, 0
	return h.thresh
}
