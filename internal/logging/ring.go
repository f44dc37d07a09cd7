package logging

import (
	"sync"

	"go.opentelemetry.io/otel/trace"
)

// Default bounds of a LineRing.
const (
	DefaultRingBytes = 4 << 20
	DefaultRingLines = 20000
)

// LineRing keeps the most recent log lines that carry a trace_id, as
// written, indexed by trace ID, so a trace view can show its lines. It is
// bounded twice: by the bytes of the lines (one arena, allocated whole by the first line;
// keeping a line copies it and allocates nothing) and by their number; the
// oldest lines go first and are counted in Evicted. A line longer than a
// quarter of the arena is not kept (counted in TooLong).
//
// Give it to a pipeline with Options.Ring; observe's status page reads it.
type LineRing struct {
	mu       sync.Mutex
	maxBytes int
	maxLines int
	arena    []byte // maxBytes, allocated by the first add
	pos      int    // where the next line's bytes go
	ents     []ringEntry
	first    uint64 // sequence number of the oldest line held (1-based)
	total    uint64 // lines ever kept; the newest's sequence number
	evicted  uint64
	tooLong  uint64
	head     map[trace.TraceID]uint64 // each trace's newest line
}

type ringEntry struct {
	tid    trace.TraceID
	off, n int
	seq    uint64
	prev   uint64 // the trace's previous line; 0: none
}

// NewLineRing returns a ring keeping up to maxBytes of lines and up to
// maxLines lines (defaults when <= 0: DefaultRingBytes, DefaultRingLines).
func NewLineRing(maxBytes, maxLines int) *LineRing {
	if maxBytes <= 0 {
		maxBytes = DefaultRingBytes
	}
	if maxLines <= 0 {
		maxLines = DefaultRingLines
	}
	// The arena and the entries are allocated by the first line kept, so
	// Init stays cheap and a service that never logs inside a trace never
	// holds them.
	return &LineRing{
		maxBytes: maxBytes,
		maxLines: maxLines,
		first:    1,
		head:     make(map[trace.TraceID]uint64),
	}
}

// add keeps a copy of line for trace tid.
func (r *LineRing) add(tid trace.TraceID, line []byte) {
	n := len(line)
	if n > r.maxBytes/4 {
		r.mu.Lock()
		r.tooLong++
		r.mu.Unlock()
		return
	}
	r.mu.Lock()
	if r.arena == nil {
		r.arena, r.ents = make([]byte, r.maxBytes), make([]ringEntry, r.maxLines)
	}
	off := r.pos
	wrap := off+n > len(r.arena)
	if wrap {
		off = 0
	}
	// Lines lie in the arena oldest first from pos on, circularly: free
	// the oldest while they sit where the new line goes (with a wrap, also
	// the unused tail), or while every slot is taken.
	for r.first <= r.total {
		e := &r.ents[(r.first-1)%uint64(len(r.ents))]
		full := r.total-r.first+1 >= uint64(len(r.ents))
		if !full && !overlaps(e.off, e.n, off, n) && !(wrap && e.off >= r.pos) {
			break
		}
		r.evictOldest(e)
	}
	r.total++
	e := &r.ents[(r.total-1)%uint64(len(r.ents))]
	*e = ringEntry{tid: tid, off: off, n: n, seq: r.total, prev: r.head[tid]}
	r.head[tid] = r.total
	copy(r.arena[off:off+n], line)
	r.pos = off + n
	r.mu.Unlock()
}

func overlaps(a, an, b, bn int) bool { return a < b+bn && b < a+an }

func (r *LineRing) evictOldest(e *ringEntry) {
	if r.head[e.tid] == e.seq {
		delete(r.head, e.tid)
	}
	r.first++
	r.evicted++
}

// Lines returns the kept lines of trace tid, oldest first, as written
// (each a copy, ending in its newline); nil when none is kept.
func (r *LineRing) Lines(tid trace.TraceID) [][]byte {
	var out [][]byte
	r.mu.Lock()
	for seq := r.head[tid]; seq >= r.first && seq != 0; {
		e := &r.ents[(seq-1)%uint64(len(r.ents))]
		if e.seq != seq || e.tid != tid {
			break
		}
		out = append(out, append([]byte(nil), r.arena[e.off:e.off+e.n]...))
		seq = e.prev
	}
	r.mu.Unlock()
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// RingStats describes what a LineRing holds and has evicted.
type RingStats struct {
	MaxBytes int    `json:"max_bytes"`
	MaxLines int    `json:"max_lines"`
	Lines    int    `json:"lines"`    // lines held
	Traces   int    `json:"traces"`   // traces with at least one line held
	Total    uint64 `json:"total"`    // lines ever kept
	Evicted  uint64 `json:"evicted"`  // lines overwritten by newer ones
	TooLong  uint64 `json:"too_long"` // lines not kept: longer than a quarter of MaxBytes
}

// Stats reports what the ring holds and has evicted.
func (r *LineRing) Stats() RingStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RingStats{
		MaxBytes: r.maxBytes, MaxLines: r.maxLines,
		Lines: int(r.total - r.first + 1), Traces: len(r.head),
		Total: r.total, Evicted: r.evicted, TooLong: r.tooLong,
	}
}
