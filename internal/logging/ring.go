package logging

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
)

// Default bounds of a LineRing.
const (
	DefaultRingBytes = 4 << 20
	DefaultRingLines = 20000
)

// LineRing keeps the most recent log lines that carry a trace_id, as
// written, so a trace view can show its lines. It is bounded twice: by the
// bytes of the lines (one arena, allocated whole by the first line; keeping
// a line copies it and allocates nothing) and by their number; the oldest
// lines go first and are counted in Evicted. A line longer than a quarter of
// the arena is not kept (counted in TooLong).
//
// Keeping a line is a copy and a slot under a short lock: there is no index
// to maintain. Lines and Stats find a trace's lines by scanning the held
// slots (at most DefaultRingLines by default), which is cheap for a page
// view and keeps the cost off every log call.
//
// Give it to a pipeline with Options.Ring; observe's status page reads it.
type LineRing struct {
	mu       sync.Mutex
	maxBytes int
	maxLines int
	arena    []byte // maxBytes, allocated by the first add
	pos      int    // where the next line's bytes go
	ents     []ringEntry
	oldest   int    // slot of the oldest line held
	held     int    // lines held, in the slots from oldest on, circularly
	total    uint64 // lines ever kept
	evicted  uint64
	tooLong  atomic.Uint64

	// sources hold lines not yet copied in (a buffered writer's marked
	// lines); Lines and Stats have them copy in first. Set up by New.
	srcMu   sync.Mutex
	sources []func()
}

type ringEntry struct {
	tid    trace.TraceID
	off, n int
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
	// The arena and the slots are allocated by the first line kept, so
	// Init stays cheap and a service that never logs inside a trace never
	// holds them.
	return &LineRing{maxBytes: maxBytes, maxLines: maxLines}
}

// addSource registers a holder of lines not yet copied in.
func (r *LineRing) addSource(keep func()) {
	r.srcMu.Lock()
	r.sources = append(r.sources, keep)
	r.srcMu.Unlock()
}

// sync has every source copy its pending lines in.
func (r *LineRing) sync() {
	r.srcMu.Lock()
	src := r.sources
	r.srcMu.Unlock()
	for _, keep := range src {
		keep()
	}
}

// add keeps a copy of line for trace tid.
func (r *LineRing) add(tid trace.TraceID, line []byte) {
	if len(line) > r.maxBytes/4 {
		r.tooLong.Add(1)
		return
	}
	r.mu.Lock()
	r.addLocked(tid, line)
	r.mu.Unlock()
}

// addMarked keeps the marked lines of buf, in order, under one lock.
func (r *LineRing) addMarked(buf []byte, marks []ringMark) {
	r.mu.Lock()
	for _, m := range marks {
		if line := buf[m.off:m.end]; len(line) > r.maxBytes/4 {
			r.tooLong.Add(1)
		} else {
			r.addLocked(m.tid, line)
		}
	}
	r.mu.Unlock()
}

// addLocked keeps a copy of line, no longer than a quarter of the arena,
// under r.mu.
func (r *LineRing) addLocked(tid trace.TraceID, line []byte) {
	n := len(line)
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
	// Slot indexes wrap by comparison, not division: this runs per line.
	for r.held > 0 {
		e := &r.ents[r.oldest]
		if r.held < len(r.ents) && !overlaps(e.off, e.n, off, n) && !(wrap && e.off >= r.pos) {
			break
		}
		if r.oldest++; r.oldest == len(r.ents) {
			r.oldest = 0
		}
		r.held--
		r.evicted++
	}
	slot := r.oldest + r.held
	if slot >= len(r.ents) {
		slot -= len(r.ents)
	}
	r.ents[slot] = ringEntry{tid: tid, off: off, n: n}
	r.held++
	r.total++
	copy(r.arena[off:off+n], line)
	r.pos = off + n
}

func overlaps(a, an, b, bn int) bool { return a < b+bn && b < a+an }

// Lines returns the kept lines of trace tid, oldest first, as written
// (each a copy, ending in its newline); nil when none is kept.
func (r *LineRing) Lines(tid trace.TraceID) [][]byte {
	r.sync()
	var out [][]byte
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ents == nil {
		return nil
	}
	for i := range r.held {
		if e := &r.ents[(r.oldest+i)%len(r.ents)]; e.tid == tid {
			out = append(out, append([]byte(nil), r.arena[e.off:e.off+e.n]...))
		}
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

// Stats reports what the ring holds and has evicted. Traces is counted
// from a copy of the held slots' trace IDs, outside the lock.
func (r *LineRing) Stats() RingStats {
	r.sync()
	r.mu.Lock()
	st := RingStats{
		MaxBytes: r.maxBytes, MaxLines: r.maxLines,
		Lines: r.held,
		Total: r.total, Evicted: r.evicted, TooLong: r.tooLong.Load(),
	}
	tids := make([]trace.TraceID, 0, st.Lines)
	for i := range r.held {
		tids = append(tids, r.ents[(r.oldest+i)%len(r.ents)].tid)
	}
	r.mu.Unlock()
	if len(tids) > 0 {
		traces := make(map[trace.TraceID]struct{}, 64)
		for _, t := range tids {
			traces[t] = struct{}{}
		}
		st.Traces = len(traces)
	}
	return st
}
