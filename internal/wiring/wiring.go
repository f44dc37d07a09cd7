// Package wiring holds what observe.Init makes current in the process: the
// tracer provider, the RED metrics and the root log handler. The middleware
// (without WithObserver), tracing.Go and logging.Named find them here; only
// our own packages reach it, so it is not part of the API.
//
// A slot holds a value of any type: the signal packages own their types and
// this package imports none of them (they import it). Each reader asserts
// the type it stored, which costs a comparison.
package wiring

import "sync/atomic"

// Slot is one current value, safe for concurrent use.
type Slot struct{ v atomic.Pointer[any] }

// Store makes v current; nil (untyped) clears the slot.
func (s *Slot) Store(v any) {
	if v == nil {
		s.v.Store(nil)
		return
	}
	s.v.Store(&v)
}

// Load returns the current value, or nil.
func (s *Slot) Load() any {
	if p := s.v.Load(); p != nil {
		return *p
	}
	return nil
}

// The current instruments of the process; observe.Init stores them and
// Shutdown clears those it stored.
var (
	Tracing Slot // *tracing.Provider
	Metrics Slot // *metrics.Metrics
	LogRoot Slot // *logging.Handler
)
