// Package cpuring keeps the process's recent CPU profiles in memory, bounded
// in count and bytes, and cuts the profile of one trace out of them: the
// samples whose span_id pprof label (set by span↔profile links) belongs to
// the trace's local root spans.
//
// The profiles come from pyroscope-go's CPU collector in both modes: with a
// Pyroscope server the profiler hands over each CPU profile it uploads (Add);
// without one, Collector runs pyroscope-go's session with only the CPU type
// and this ring as its upstream, so nothing leaves the process. Either way
// the CPU profiler has one owner, pyroscope-go, which lets the standard
// /debug/pprof/profile handler interrupt it and resume it afterwards.
package cpuring

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/pyroscope-go/upstream"
)

// Defaults: five minutes of 10 s profiles, at most 1 MiB. A 10 s CPU
// profile of a busy service is tens of KiB gzipped (the quickstart under
// load: about 19 KiB), so the byte bound binds only on a service with
// very varied stacks, and then keeps fewer minutes.
const (
	DefaultProfiles = 30
	DefaultBytes    = 1 << 20
	DefaultPeriod   = 10 * time.Second
)

// Ring holds the most recent CPU profiles, oldest first. Adding past either
// bound evicts the oldest profiles and counts them. It is safe for
// concurrent use.
type Ring struct {
	maxProfiles int
	maxBytes    int

	mu    sync.Mutex
	items []entry // oldest first
	bytes int

	added    atomic.Uint64
	evicted  atomic.Uint64
	tooLarge atomic.Uint64
}

type entry struct {
	start, end time.Time
	data       []byte // gzipped pprof protobuf, as the runtime wrote it
}

// New returns a ring bounded by maxProfiles and maxBytes (defaults for
// values ≤ 0).
func New(maxProfiles, maxBytes int) *Ring {
	if maxProfiles <= 0 {
		maxProfiles = DefaultProfiles
	}
	if maxBytes <= 0 {
		maxBytes = DefaultBytes
	}
	return &Ring{maxProfiles: maxProfiles, maxBytes: maxBytes}
}

// Add keeps a CPU profile covering [start, end]. The ring keeps data (the
// caller must not change it afterwards). A profile larger than the byte
// bound is not kept and counted as too large; empty ones are ignored.
func (r *Ring) Add(start, end time.Time, data []byte) {
	if r == nil || len(data) == 0 {
		return
	}
	if len(data) > r.maxBytes {
		r.tooLarge.Add(1)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	drop := 0
	for len(r.items)-drop > 0 && (len(r.items)-drop >= r.maxProfiles || r.bytes+len(data) > r.maxBytes) {
		r.bytes -= len(r.items[drop].data)
		r.items[drop] = entry{} // release the bytes
		drop++
	}
	if drop > 0 {
		r.items = append(r.items[:0], r.items[drop:]...)
		r.evicted.Add(uint64(drop))
	}
	r.items = append(r.items, entry{start: start, end: end, data: data})
	r.bytes += len(data)
	r.added.Add(1)
}

// Upload implements pyroscope-go's upstream.Upstream: CPU profiles (the
// jobs in samples) are kept, other profile types ignored.
func (r *Ring) Upload(job *upstream.UploadJob) {
	if job == nil || job.Units != "samples" || job.Format != upstream.FormatPprof {
		return
	}
	r.Add(job.StartTime, job.EndTime, job.Profile)
}

// Flush implements upstream.Upstream; Upload is synchronous.
func (r *Ring) Flush() {}

// Stats are the ring's bounds, what it holds and what it dropped.
type Stats struct {
	Profiles    int       `json:"profiles"`
	Bytes       int       `json:"bytes"`
	MaxProfiles int       `json:"max_profiles"`
	MaxBytes    int       `json:"max_bytes"`
	Added       uint64    `json:"added"`
	Evicted     uint64    `json:"evicted"`
	TooLarge    uint64    `json:"too_large"`
	Oldest      time.Time `json:"oldest,omitzero"`
	Newest      time.Time `json:"newest,omitzero"`
}

// Stats reports the ring's state.
func (r *Ring) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Profiles: len(r.items), Bytes: r.bytes, MaxProfiles: r.maxProfiles, MaxBytes: r.maxBytes,
		Added: r.added.Load(), Evicted: r.evicted.Load(), TooLarge: r.tooLarge.Load()}
	if len(r.items) > 0 {
		s.Oldest, s.Newest = r.items[0].start, r.items[len(r.items)-1].end
	}
	return s
}

// overlapping returns the profiles whose time range meets [from, to].
func (r *Ring) overlapping(from, to time.Time) []entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []entry
	for _, e := range r.items {
		if !e.end.Before(from) && !e.start.After(to) {
			out = append(out, e)
		}
	}
	return out
}
