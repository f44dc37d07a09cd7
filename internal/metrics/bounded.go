package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// bounded caches the series (the resolved observers of one label
// combination) of one metric and caps how many there can be.
//
// Reads are a lock-free lookup in an immutable map; a new series copies the
// map under a mutex. That is O(n) per new series, but there are at most
// limit+overflowReserve+1 of them, created once each, and it keeps the hot
// path free of locks, interface boxing and allocations.
type bounded[K comparable, S any] struct {
	m        atomic.Pointer[map[K]*S]
	mu       sync.Mutex
	full     atomic.Bool // n reached limit: misses need not take mu
	n        int         // series created under the limit
	extra    int         // overflow series created in the reserve
	limit    int
	create   func(K) *S
	clean    func(K) K          // on a miss: bound the key's free-form value (nil: none)
	overflow prometheus.Counter // observe_metric_overflow_total{metric=...}
	allOther K                  // every label _OTHER: where everything goes past the reserve
}

// newBounded returns an empty cache. clean, run on a cache miss, returns the
// key with an unusable free-form value (too long, not UTF-8) replaced by the
// _OTHER sentinel, and must be idempotent. create resolves a new series; it
// must not fail (fall back to unregistered observers if client_golang
// refuses the label values).
func newBounded[K comparable, S any](limit int, overflow prometheus.Counter, allOther K, clean func(K) K, create func(K) *S) *bounded[K, S] {
	b := &bounded[K, S]{limit: limit, create: create, clean: clean, overflow: overflow, allOther: allOther}
	m := map[K]*S{}
	b.m.Store(&m)
	return b
}

// lookup returns the cached series of k, or nil.
func (b *bounded[K, S]) lookup(k K) *S { return (*b.m.Load())[k] }

// get returns the series of k, creating it while the metric is under its
// limit; past the limit it returns nil and the caller records into an
// overflow series (see reserve).
func (b *bounded[K, S]) get(k K) *S {
	if s := (*b.m.Load())[k]; s != nil {
		return s
	}
	if b.full.Load() {
		return nil
	}
	if b.clean != nil {
		if c := b.clean(k); c != k {
			return b.get(c)
		}
	}
	return b.add(k, false)
}

// reserve returns the overflow series of k, creating it while the overflow
// reserve lasts; past it, the all-_OTHER series. It never returns nil.
func (b *bounded[K, S]) reserve(k K) *S {
	if s := (*b.m.Load())[k]; s != nil {
		return s
	}
	return b.add(k, true)
}

func (b *bounded[K, S]) add(k K, overflow bool) *S {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.m.Load()
	if s := old[k]; s != nil {
		return s
	}
	if overflow {
		if b.extra >= overflowReserve && k != b.allOther {
			if s := old[b.allOther]; s != nil {
				return s
			}
			k = b.allOther // created once, as the last overflow series
		}
	} else if b.n >= b.limit {
		return nil
	}
	s := b.create(k)
	next := make(map[K]*S, len(old)+1)
	for kk, v := range old {
		next[kk] = v
	}
	next[k] = s
	b.m.Store(&next)
	if overflow {
		b.extra++
	} else {
		b.n++
		b.full.Store(b.n >= b.limit)
	}
	return s
}

// Len reports how many series the metric holds (overflow series included).
func (b *bounded[K, S]) Len() int { return len(*b.m.Load()) }
