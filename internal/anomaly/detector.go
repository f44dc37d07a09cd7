// Package anomaly is observe's in-process anomaly detector: it is fed what
// each route did in one evaluation window (request count, server errors,
// p95 latency) and tells when a route departs from its own recent
// behaviour, and when it comes back.
//
// It is pure and clock-free: time comes only from the windows it is fed, so
// tests drive it with simulated days in milliseconds. The root package
// feeds it from the shared RED sampler (internal/redsample) and turns its
// events into metrics, log lines, hooks and responses.
//
// Three signals per route, each with its own baseline:
//
//   - rate: requests per second, for drops (a spike is not a failure). The
//     baseline is an exponentially weighted mean and variance of the rate;
//     the score is how many standard deviations of the window's count
//     (never less than the Poisson one) it fell below the expected count.
//   - errors: the server-error ratio, for rises. The baseline ratio is the
//     ratio of exponentially weighted error and request counts; the score
//     is a binomial z-score with a continuity correction and a variance
//     floor, so that a handful of errors on a quiet route scores low.
//   - latency: the window's p95, for rises, in log space (a step ×3 is the
//     same score at 5 ms and at 5 s). Exponentially weighted mean and
//     variance of ln(p95), the standard deviation floored at
//     MinLatencySD.
//
// A signal is watched once Warmup windows with at least MinCount requests
// have built its baseline. A window scoring at or above Threshold is
// anomalous; Needed anomalous windows among the last Of start an anomaly. It ends after
// Recovery consecutive windows scoring below Threshold/2 (hysteresis), or,
// when it lasts MaxActive, by adopting the new level as the baseline. The
// baseline learns only from windows with no anomalous one among the last Of
// (and clipped at three standard deviations), so an anomaly does not teach the detector that it is normal.
//
// Memory: a route costs one routeState and its map entry, about 500 bytes
// (measured in TestMemoryPerRoute; the key's strings are the caller's),
// whatever its traffic; at most
// MaxRoutes routes are tracked, the rest counted in Evicted.
package anomaly

import (
	"math"
	"math/bits"
	"sort"
	"time"
)

// Kind is the signal an anomaly is about.
type Kind string

// The signals.
const (
	Rate    Kind = "rate"
	Errors  Kind = "errors"
	Latency Kind = "latency"
)

// Kinds lists the signals in a fixed order.
var Kinds = [...]Kind{Rate, Errors, Latency}

// Key names a route: the transport kind (http_server, http_client,
// rpc_server, rpc_client) and the route (http_route, server_address,
// rpc_method).
type Key struct {
	Kind  string
	Route string
}

// Window is what one route did in one evaluation window.
type Window struct {
	Start, End time.Time
	Count      uint64
	Errors     uint64
	P95        float64 // seconds; NaN or 0 when unknown
}

// Config tunes the detector. Zero values take the defaults.
type Config struct {
	// Threshold is the score at which a window is anomalous (default 4).
	Threshold float64
	// Needed anomalous windows among the last Of start an anomaly
	// (defaults 2 of 3: one quiet window in a real step does not hide it).
	Needed, Of int
	// Recovery consecutive calm windows (score below Threshold/2) end it
	// (default 3).
	Recovery int
	// Warmup windows with traffic build a baseline before any verdict
	// (default 6).
	Warmup int
	// MinCount is the traffic guard: fewer requests in a window give no
	// latency or error verdict, and a baseline expecting fewer gives no rate
	// verdict (default 20).
	MinCount uint64
	// Alpha is the weight of a new window in the exponentially weighted
	// baselines (default 0.05: a time constant of 20 windows).
	Alpha float64
	// MinLatencySD floors the standard deviation of ln(p95) (default 0.15: histogram buckets make p95 coarse).
	MinLatencySD float64
	// MinLatencyRatio: a latency window is anomalous only when its p95 is
	// at least this multiple of the baseline (default 2).
	MinLatencyRatio float64
	// MinErrorRise: an error window is anomalous only when its ratio is at
	// least twice the baseline and this much above it (default 0.01).
	MinErrorRise float64
	// MaxRateDrop: a rate window is anomalous only when its rate is at most
	// this fraction of the baseline (default 0.5).
	MaxRateDrop float64
	// MaxActive: an anomaly lasting this long ends by becoming the
	// baseline (default 1h).
	MaxActive time.Duration
	// MaxRoutes bounds the routes tracked (default 1000); others are
	// counted in Evicted.
	MaxRoutes int
	// IdleAfter: a route without requests for this long, and no anomaly
	// active, is forgotten (default 1h).
	IdleAfter time.Duration
	// Version is the service.version events carry; SetVersion changes it.
	Version string
}

func (c *Config) defaults() {
	if !(c.Threshold > 0) {
		c.Threshold = 4
	}
	if c.Needed <= 0 {
		c.Needed = 2
	}
	if c.Of < c.Needed {
		c.Of = max(c.Needed+1, 3)
	}
	c.Of = min(c.Of, 32)
	c.Needed = min(c.Needed, c.Of)
	if c.Recovery <= 0 {
		c.Recovery = 3
	}
	if c.Warmup <= 0 {
		c.Warmup = 6
	}
	if c.MinCount == 0 {
		c.MinCount = 20
	}
	if !(c.Alpha > 0 && c.Alpha < 1) {
		c.Alpha = 0.05
	}
	if !(c.MinLatencySD > 0) {
		c.MinLatencySD = 0.15
	}
	if !(c.MinLatencyRatio >= 1) {
		c.MinLatencyRatio = 2
	}
	if !(c.MinErrorRise > 0) {
		c.MinErrorRise = 0.01
	}
	if !(c.MaxRateDrop > 0 && c.MaxRateDrop < 1) {
		c.MaxRateDrop = 0.5
	}
	if c.MaxActive <= 0 {
		c.MaxActive = time.Hour
	}
	if c.MaxRoutes <= 0 {
		c.MaxRoutes = 1000
	}
	if c.IdleAfter <= 0 {
		c.IdleAfter = time.Hour
	}
}

// Event is an anomaly starting or ending.
type Event struct {
	Key     Key
	Kind    Kind
	Started bool   // true: it starts; false: it ends
	Reason  string // for an end: "recovered", "rebaselined" (lasted MaxActive), "version" (SetVersion)
	Version string // service.version whose baseline it departs from
	// Baseline and Observed are in the signal's unit: requests per second
	// (rate), a ratio (errors), seconds of p95 (latency). For an end,
	// Observed is the last window's value.
	Baseline, Observed float64
	Score              float64 // for a start, the window's; for an end, the anomaly's highest
	Since              time.Time
	At                 time.Time // end of the window that decided
}

// Active is an anomaly in progress.
type Active struct {
	Key                Key
	Kind               Kind
	Version            string
	Since              time.Time
	Baseline, Observed float64
	Score              float64 // the highest so far
}

// Detector holds the baselines. It is not safe for concurrent use: one
// goroutine (the sampler's) feeds it; callers needing a view from other
// goroutines copy Active under their own lock.
type Detector struct {
	cfg     Config
	routes  map[Key]*routeState
	evicted uint64
	lastEnd time.Time
}

// New returns a detector with cfg (defaults filled in).
func New(cfg Config) *Detector {
	cfg.defaults()
	return &Detector{cfg: cfg, routes: make(map[Key]*routeState)}
}

// Config returns the configuration in use, defaults filled in.
func (d *Detector) Config() Config { return d.cfg }

// Evicted reports how many routes were not tracked (MaxRoutes reached) or
// forgotten when idle.
func (d *Detector) Evicted() uint64 { return d.evicted }

// Routes reports how many routes are tracked.
func (d *Detector) Routes() int { return len(d.routes) }

type routeState struct {
	lastEnd     time.Time // end of the last window seen
	lastTraffic time.Time // end of the last window with a request
	sig         [len(Kinds)]signal
}

// signal is one signal's baseline and verdict state.
type signal struct {
	mean, vari float64 // rate: req/s; latency: ln(p95 s)
	errs, reqs float64 // errors: weighted counts
	n          int     // windows learnt
	recent     uint32  // the last Of windows, newest in bit 0: 1 when anomalous
	calm       int     // consecutive calm windows while active
	active     bool
	since      time.Time
	peak       float64
	observed   float64
	baseline   float64 // at the start
}

// Observe feeds one evaluation window per route, ending at end. A tracked
// route missing from ws did nothing since its last window (a window of no
// requests). It returns the anomalies that started or ended, sorted by
// route and kind.
func (d *Detector) Observe(end time.Time, ws map[Key]Window) []Event {
	var evs []Event
	for k, w := range ws {
		st := d.routes[k]
		if st == nil {
			if w.Count == 0 {
				continue // nothing to learn; do not take a slot
			}
			if len(d.routes) >= d.cfg.MaxRoutes {
				d.evicted++
				continue
			}
			st = &routeState{}
			d.routes[k] = st
		}
		evs = d.observe(evs, k, st, w)
	}
	for k, st := range d.routes {
		if _, ok := ws[k]; ok {
			continue
		}
		start := st.lastEnd
		if start.IsZero() || !start.Before(end) {
			continue
		}
		evs = d.observe(evs, k, st, Window{Start: start, End: end})
	}
	for k, st := range d.routes {
		if end.Sub(st.lastTraffic) >= d.cfg.IdleAfter && !st.anyActive() {
			delete(d.routes, k)
			d.evicted++
		}
	}
	d.lastEnd = end
	sortEvents(evs)
	return evs
}

func (st *routeState) anyActive() bool {
	for i := range st.sig {
		if st.sig[i].active {
			return true
		}
	}
	return false
}

func (d *Detector) observe(evs []Event, k Key, st *routeState, w Window) []Event {
	secs := w.End.Sub(w.Start).Seconds()
	if !(secs > 0) {
		return evs
	}
	st.lastEnd = w.End
	if w.Count > 0 {
		st.lastTraffic = w.End
	}
	enough := w.Count >= d.cfg.MinCount
	for i, kind := range Kinds {
		s := &st.sig[i]
		var score, base, obs float64
		verdict := false // the window is judged
		switch kind {
		case Rate:
			score, base, obs, verdict = d.rateScore(s, w, secs)
		case Errors:
			if enough {
				score, base, obs, verdict = d.errorScore(s, w)
			}
		case Latency:
			if enough && w.P95 > 0 && !math.IsInf(w.P95, 0) {
				score, base, obs, verdict = d.latencyScore(s, w)
			}
		}
		evs = d.step(evs, k, kind, s, w, verdict, score, base, obs)
		if !s.active && s.recent == 0 {
			d.learn(kind, s, w, secs, enough)
		}
	}
	return evs
}

// step advances a signal's verdict state by one window.
func (d *Detector) step(evs []Event, k Key, kind Kind, s *signal, w Window, verdict bool, score, base, obs float64) []Event {
	th := d.cfg.Threshold
	if s.active {
		if verdict {
			s.observed = obs
			s.peak = max(s.peak, score)
		}
		if !verdict || score < th/2 {
			s.calm++
		} else {
			s.calm = 0
		}
		reason := ""
		switch {
		case s.calm >= d.cfg.Recovery:
			reason = "recovered"
		case w.End.Sub(s.since) >= d.cfg.MaxActive:
			reason = "rebaselined"
		}
		if reason == "" {
			return evs
		}
		evs = append(evs, Event{Key: k, Kind: kind, Reason: reason, Version: d.cfg.Version,
			Baseline: s.baseline, Observed: s.observed, Score: s.peak, Since: s.since, At: w.End})
		s.active, s.calm, s.recent = false, 0, 0
		if reason == "rebaselined" {
			*s = signal{} // learn the new level from scratch
		}
		return evs
	}
	mask := uint32(1)<<d.cfg.Of - 1
	s.recent = s.recent << 1 & mask
	if !verdict || score < th {
		return evs
	}
	if s.recent == 0 {
		s.since = w.Start // the first anomalous window in view
	}
	s.recent |= 1
	if bits.OnesCount32(s.recent) < d.cfg.Needed {
		return evs
	}
	s.active, s.calm = true, 0
	s.peak, s.baseline, s.observed = score, base, obs
	return append(evs, Event{Key: k, Kind: kind, Started: true, Version: d.cfg.Version,
		Baseline: base, Observed: obs, Score: score, Since: s.since, At: w.End})
}

func (d *Detector) rateScore(s *signal, w Window, secs float64) (score, base, obs float64, ok bool) {
	obs = float64(w.Count) / secs
	if s.n < d.cfg.Warmup {
		return 0, s.mean, obs, false
	}
	expected := s.mean * secs
	if expected < float64(d.cfg.MinCount) {
		return 0, s.mean, obs, false
	}
	sd := math.Sqrt(max(s.vari*secs*secs, expected))
	score = (expected - float64(w.Count)) / sd
	if obs > d.cfg.MaxRateDrop*s.mean {
		score = min(score, d.cfg.Threshold/2-1e-9) // a mild dip: calm
		if score < 0 {
			score = 0
		}
	}
	return max(score, 0), s.mean, obs, true
}

func (d *Detector) errorScore(s *signal, w Window) (score, base, obs float64, ok bool) {
	n := float64(w.Count)
	obs = float64(w.Errors) / n
	if s.n < d.cfg.Warmup || s.reqs <= 0 {
		return 0, 0, obs, false
	}
	p0 := s.errs / s.reqs
	v := n*p0*(1-p0) + 0.25
	score = (float64(w.Errors) - n*p0 - 0.5) / math.Sqrt(v)
	if obs < 2*p0 || obs < p0+d.cfg.MinErrorRise {
		score = min(score, d.cfg.Threshold/2-1e-9)
	}
	return max(score, 0), p0, obs, true
}

func (d *Detector) latencyScore(s *signal, w Window) (score, base, obs float64, ok bool) {
	x := math.Log(w.P95)
	if s.n < d.cfg.Warmup {
		return 0, math.Exp(s.mean), w.P95, false
	}
	sd := max(math.Sqrt(s.vari), d.cfg.MinLatencySD)
	score = (x - s.mean) / sd
	if x-s.mean < math.Log(d.cfg.MinLatencyRatio) {
		score = min(score, d.cfg.Threshold/2-1e-9)
	}
	return max(score, 0), math.Exp(s.mean), w.P95, true
}

// learn folds a calm window into the signal's baseline: a running mean and
// variance during warm-up, exponentially weighted after it, the value
// clipped at three standard deviations so one outlier does not widen the
// baseline.
func (d *Detector) learn(kind Kind, s *signal, w Window, secs float64, enough bool) {
	switch kind {
	case Rate:
		r := float64(w.Count) / secs
		if s.n < d.cfg.Warmup && !enough {
			return // warm up on real traffic only
		}
		s.update(r, d.cfg.Alpha, d.cfg.Warmup, 0)
	case Errors:
		if !enough {
			return
		}
		a := d.cfg.Alpha
		if s.n < d.cfg.Warmup {
			a = 1 / float64(s.n+1) // plain sums during warm-up
		}
		s.errs += a * (float64(w.Errors) - s.errs)
		s.reqs += a * (float64(w.Count) - s.reqs)
		s.n++
	case Latency:
		if !enough || !(w.P95 > 0) || math.IsInf(w.P95, 0) {
			return
		}
		s.update(math.Log(w.P95), d.cfg.Alpha, d.cfg.Warmup, d.cfg.MinLatencySD)
	}
}

func (s *signal) update(x, alpha float64, warmup int, minSD float64) {
	if s.n < warmup {
		// Welford's running mean and (population) variance.
		s.n++
		delta := x - s.mean
		s.mean += delta / float64(s.n)
		s.vari += (delta*(x-s.mean) - s.vari) / float64(s.n)
		return
	}
	s.n++
	sd := max(math.Sqrt(s.vari), minSD)
	if sd > 0 {
		x = min(max(x, s.mean-3*sd), s.mean+3*sd)
	}
	diff := x - s.mean
	incr := alpha * diff
	s.mean += incr
	s.vari = (1 - alpha) * (s.vari + diff*incr)
}

// SetVersion starts a new baseline for every route when v differs from the
// current version (a deploy: the new version's behaviour is its own),
// ending the anomalies in progress with Reason "version".
func (d *Detector) SetVersion(v string, at time.Time) []Event {
	if v == d.cfg.Version {
		return nil
	}
	var evs []Event
	for k, st := range d.routes {
		for i, kind := range Kinds {
			if s := &st.sig[i]; s.active {
				evs = append(evs, Event{Key: k, Kind: kind, Reason: "version", Version: d.cfg.Version,
					Baseline: s.baseline, Observed: s.observed, Score: s.peak, Since: s.since, At: at})
			}
		}
	}
	d.cfg.Version = v
	clear(d.routes)
	sortEvents(evs)
	return evs
}

// Active returns the anomalies in progress, sorted by route and kind.
func (d *Detector) Active() []Active {
	var out []Active
	for k, st := range d.routes {
		for i, kind := range Kinds {
			if s := &st.sig[i]; s.active {
				out = append(out, Active{Key: k, Kind: kind, Version: d.cfg.Version, Since: s.since,
					Baseline: s.baseline, Observed: s.observed, Score: s.peak})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return less(out[i].Key, out[i].Kind, out[j].Key, out[j].Kind) })
	return out
}

// Watched reports whether k's signal has a baseline (warm-up done).
func (d *Detector) Watched(k Key, kind Kind) bool {
	st := d.routes[k]
	if st == nil {
		return false
	}
	for i, kd := range Kinds {
		if kd == kind {
			return st.sig[i].n >= d.cfg.Warmup
		}
	}
	return false
}

func sortEvents(evs []Event) {
	sort.Slice(evs, func(i, j int) bool { return less(evs[i].Key, evs[i].Kind, evs[j].Key, evs[j].Kind) })
}

func less(a Key, ak Kind, b Key, bk Kind) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	if a.Route != b.Route {
		return a.Route < b.Route
	}
	return ak < bk
}
