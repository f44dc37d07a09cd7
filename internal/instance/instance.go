// Package instance links an *observe.Observer to the implementation objects
// its Init built, for observe's own packages only: middleware.WithObserver
// records with them, and tests read what the public API does not show (the
// trace store, tail-sampling counters, profiler counters, log levels).
//
// observe.Observer embeds a Link under an unexported name, so the Observer
// satisfies Source while its documented API shows none of this: Source has
// an unexported method, so nothing outside this package and the types that
// embed a Link can implement it, and no global registry is needed (nothing
// to evict, nothing that outlives the Observer).
package instance

import (
	"github.com/observekit/observe/internal/logging"
	"github.com/observekit/observe/internal/metrics"
	"github.com/observekit/observe/internal/profiling"
	"github.com/observekit/observe/internal/tracing"
)

// Set is what one observe.Init built. A field is nil when its signal is off.
type Set struct {
	Tracing  *tracing.Provider
	Metrics  *metrics.Metrics
	Levels   *logging.LevelController
	Profiler *profiling.Profiler
}

// Link is embedded in observe.Observer; Init binds it before returning. It
// has no exported method: those would be promoted into the Observer's API.
type Link struct{ set *Set }

// Bind makes s what l's owner reports. It is called once, before the owner
// is shared (observe.Init, before it returns).
func Bind(l *Link, s *Set) { l.set = s }

func (l *Link) instance() *Set { return l.set }

// Source is an owner of a Link: in practice the *observe.Observer.
type Source interface{ instance() *Set }

// Of returns what src's Init built; an empty Set (every signal off) for a
// nil src or one never bound.
func Of(src Source) *Set {
	if src != nil {
		if s := src.instance(); s != nil {
			return s
		}
	}
	return &Set{}
}
