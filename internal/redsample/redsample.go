// Package redsample turns snapshots of observe's RED histograms into
// per-route figures over time: what each route did in each sampling
// interval (count, errors, latency buckets), kept for a bounded history.
//
// It reads the registry on its own ticker, so the request path does no
// extra work: the status page's live RED table and the anomaly detector
// both read from here.
package redsample

import (
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Kind says which of observe's four RED histograms a route comes from.
type Kind string

// The kinds, one per RED histogram.
const (
	HTTPServer Kind = "http_server"
	HTTPClient Kind = "http_client"
	RPCServer  Kind = "rpc_server"
	RPCClient  Kind = "rpc_client"
)

// Key names a route: http_route for HTTP servers, server_address for HTTP
// clients, rpc_method for gRPC.
type Key struct {
	Kind  Kind
	Route string
}

// Delta is what one route did in one interval, all methods and status codes
// of the route summed.
type Delta struct {
	Start, End time.Time
	Count      uint64
	// Errors: HTTP 5xx (and, for clients, requests that got no response);
	// gRPC codes that are server errors.
	Errors uint64
	Sum    float64 // seconds
	// Bounds are the histogram's upper bounds, shared between deltas: do not
	// modify. Buckets are non-cumulative counts per bound, len(Bounds)+1, the
	// last one for +Inf.
	Bounds  []float64
	Buckets []uint64
}

// Rate is Count per second over the delta's span; 0 for an empty span.
func (d Delta) Rate() float64 {
	s := d.End.Sub(d.Start).Seconds()
	if s <= 0 {
		return 0
	}
	return float64(d.Count) / s
}

// ErrorRatio is Errors/Count; 0 when Count is 0.
func (d Delta) ErrorRatio() float64 {
	if d.Count == 0 {
		return 0
	}
	return float64(d.Errors) / float64(d.Count)
}

// Quantile estimates the q-quantile (0 ≤ q ≤ 1) as PromQL's
// histogram_quantile does over this delta: linear interpolation within the
// bucket holding the rank, the highest finite bound when the rank falls in
// +Inf. NaN when the delta has no observations or no buckets.
func (d Delta) Quantile(q float64) float64 {
	var total uint64
	for _, c := range d.Buckets {
		total += c
	}
	if total == 0 || len(d.Bounds) == 0 || len(d.Buckets) != len(d.Bounds)+1 || math.IsNaN(q) {
		return math.NaN()
	}
	q = min(max(q, 0), 1)
	rank := q * float64(total)
	var cum uint64
	for i, c := range d.Buckets {
		prev := cum
		cum += c
		if float64(cum) < rank || c == 0 {
			continue
		}
		if i == len(d.Bounds) { // +Inf
			return d.Bounds[len(d.Bounds)-1]
		}
		upper := d.Bounds[i]
		lower := 0.0
		if i > 0 {
			lower = d.Bounds[i-1]
		} else if upper <= 0 {
			return upper
		}
		return lower + (upper-lower)*(rank-float64(prev))/float64(c)
	}
	return d.Bounds[len(d.Bounds)-1]
}

// Merge sums consecutive deltas: Start of the first, End of the last. Deltas
// with different bounds are summed on count, errors and sum only.
func Merge(ds ...Delta) Delta {
	var m Delta
	for i, d := range ds {
		if i == 0 {
			m.Start, m.Bounds = d.Start, d.Bounds
			m.Buckets = make([]uint64, len(d.Buckets))
		}
		m.End = d.End
		m.Count += d.Count
		m.Errors += d.Errors
		m.Sum += d.Sum
		if len(d.Buckets) == len(m.Buckets) && slices.Equal(d.Bounds, m.Bounds) {
			for j, c := range d.Buckets {
				m.Buckets[j] += c
			}
		}
	}
	return m
}

// Config configures a Sampler.
type Config struct {
	// Gatherer is read every Interval (observe's registry).
	Gatherer prometheus.Gatherer
	// Interval between samples; default 10s.
	Interval time.Duration
	// History is the number of intervals kept per route; default 90 (15 min
	// at the default interval).
	History int
	// MaxRoutes bounds the routes tracked; default 1000. A route past it is
	// not tracked and counted in Evicted (once per sample it shows up in),
	// until it has traffic while a tracked route has had none for the whole
	// history: that one is dropped (and counted) to make room.
	MaxRoutes int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Sampler samples the RED histograms and keeps a bounded history per route.
type Sampler struct {
	cfg Config

	mu      sync.Mutex
	last    time.Time // time of the previous sample; zero before the first
	routes  map[Key]*route
	refused map[Key]cumulative // routes refused at MaxRoutes, their last totals (bounded by MaxRoutes)
	evicted uint64
	subs    []func(time.Time, map[Key]Delta)
	panics  uint64

	started  atomic.Bool
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// route is one route's state: the previous cumulative totals and a ring of
// deltas.
type route struct {
	prev  cumulative
	ring  []Delta
	next  int
	n     int
	idle  int // consecutive samples without traffic
	bound []float64
}

type cumulative struct {
	count, errors uint64
	sum           float64
	buckets       []uint64 // cumulative per bound, as the exposition has them
}

// New returns a stopped Sampler; Start runs it.
func New(cfg Config) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.History <= 0 {
		cfg.History = 90
	}
	if cfg.MaxRoutes <= 0 {
		cfg.MaxRoutes = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sampler{cfg: cfg, routes: map[Key]*route{}, refused: map[Key]cumulative{}, stop: make(chan struct{}), done: make(chan struct{})}
}

// Interval is the configured sampling interval.
func (s *Sampler) Interval() time.Duration { return s.cfg.Interval }

// Start runs the sampling loop in a goroutine of its own until Stop. It
// takes a first sample at once, as the baseline of the first interval.
// Calls after the first are no-ops.
func (s *Sampler) Start() {
	if !s.started.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.cfg.Interval)
		defer t.Stop()
		s.Sample()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.Sample()
			}
		}
	}()
}

// Stop ends the loop started by Start and waits for it; safe to call more
// than once, and without Start.
func (s *Sampler) Stop() {
	s.stopOnce.Do(func() { close(s.stop) })
	if s.started.Load() {
		<-s.done
	}
}

// OnSample registers fn, called after every sample with the deltas of the
// interval that just ended, in the sampler's goroutine; a panic in fn is
// recovered and counted.
func (s *Sampler) OnSample(fn func(now time.Time, deltas map[Key]Delta)) {
	s.mu.Lock()
	s.subs = append(s.subs, fn)
	s.mu.Unlock()
}

// Sample reads the gatherer once and records the interval since the previous
// sample. The first sample only sets the baseline.
func (s *Sampler) Sample() {
	now := s.cfg.Now()
	cur := s.gather()

	s.mu.Lock()
	first := s.last.IsZero()
	start := s.last
	s.last = now
	var out map[Key]Delta
	if !first {
		out = make(map[Key]Delta, len(s.routes))
	}
	for k, c := range cur {
		r, ok := s.routes[k]
		if !ok {
			var prev cumulative
			if len(s.routes) >= s.cfg.MaxRoutes {
				// Full: a refused route is admitted only once it has
				// traffic, in place of a route idle for the whole history
				// (so idle refused routes do not churn with idle tracked ones).
				p, seen := s.refused[k]
				if !seen && len(s.refused) >= s.cfg.MaxRoutes {
					s.evicted++ // cannot tell whether it is new: stays refused
					continue
				}
				// Unseen: its series appeared since the last sample (every
				// refused route is remembered while there is room).
				s.refused[k] = c.cumulative
				if first || c.count == p.count || !s.evictIdle() {
					s.evicted++
					continue
				}
				delete(s.refused, k)
				prev = p
			}
			// A route first seen after the baseline holds new series (or was
			// refused until now, from prev): what they hold beyond prev
			// happened in this interval.
			r = &route{ring: make([]Delta, s.cfg.History), bound: c.bounds, prev: prev}
			s.routes[k] = r
			if first {
				r.prev = c.cumulative
				continue
			}
		}
		if first {
			r.prev = c.cumulative
			continue
		}
		d := delta(r.prev, c.cumulative, c.bounds)
		d.Start, d.End = start, now
		r.prev = c.cumulative
		r.bound = c.bounds
		r.push(d)
		out[k] = d
	}
	if !first {
		// Routes without a series this time (rare: a registry reset) still
		// get an empty interval, so histories stay aligned in time.
		for k, r := range s.routes {
			if _, ok := out[k]; ok {
				continue
			}
			if _, seen := cur[k]; seen {
				continue // refused above
			}
			d := Delta{Start: start, End: now, Bounds: r.bound, Buckets: make([]uint64, len(r.bound)+1)}
			r.push(d)
			out[k] = d
		}
	}
	subs := slices.Clone(s.subs)
	s.mu.Unlock()

	if first {
		return
	}
	for _, fn := range subs {
		s.call(fn, now, out)
	}
}

func (s *Sampler) call(fn func(time.Time, map[Key]Delta), now time.Time, out map[Key]Delta) {
	defer func() {
		if recover() != nil {
			s.mu.Lock()
			s.panics++
			s.mu.Unlock()
		}
	}()
	fn(now, out)
}

// evictIdle drops the route idle for longest if it had no traffic over the
// whole history; it reports whether room was made. Called with mu held.
func (s *Sampler) evictIdle() bool {
	var victim Key
	idle := -1
	for k, r := range s.routes {
		if r.idle > idle {
			victim, idle = k, r.idle
		}
	}
	if idle < s.cfg.History {
		return false
	}
	delete(s.routes, victim)
	s.evicted++
	return true
}

func (r *route) push(d Delta) {
	r.ring[r.next] = d
	r.next = (r.next + 1) % len(r.ring)
	if r.n < len(r.ring) {
		r.n++
	}
	if d.Count == 0 {
		r.idle++
	} else {
		r.idle = 0
	}
}

// delta is cur minus prev; a counter that went backwards (a reset) counts
// from zero, as PromQL's increase does.
func delta(prev, cur cumulative, bounds []float64) Delta {
	if cur.count < prev.count || len(prev.buckets) != len(cur.buckets) {
		prev = cumulative{buckets: make([]uint64, len(cur.buckets))}
	}
	d := Delta{
		Count:   cur.count - prev.count,
		Sum:     cur.sum - prev.sum,
		Bounds:  bounds,
		Buckets: make([]uint64, len(bounds)+1),
	}
	if cur.errors >= prev.errors {
		d.Errors = cur.errors - prev.errors
	} else {
		d.Errors = cur.errors
	}
	if d.Errors > d.Count {
		d.Errors = d.Count
	}
	var below uint64 // delta of the cumulative count of the bucket before
	for i := range bounds {
		var c uint64
		if i < len(cur.buckets) && cur.buckets[i] >= prev.buckets[i] {
			c = cur.buckets[i] - prev.buckets[i]
		}
		if c < below { // a torn read between series: never negative
			c = below
		}
		d.Buckets[i] = c - below
		below = c
	}
	if d.Count >= below {
		d.Buckets[len(bounds)] = d.Count - below
	}
	return d
}

// family says how a RED histogram maps to routes and errors.
type family struct {
	kind   Kind
	route  string // the route label
	status string // the status label
	isErr  func(string) bool
}

var families = map[string]family{
	"http_server_request_duration_seconds": {HTTPServer, "http_route", "http_response_status_code", httpServerError},
	"http_client_request_duration_seconds": {HTTPClient, "server_address", "http_response_status_code", httpClientError},
	"rpc_server_call_duration_seconds":     {RPCServer, "rpc_method", "rpc_response_status_code", rpcServerError},
	"rpc_client_call_duration_seconds":     {RPCClient, "rpc_method", "rpc_response_status_code", rpcServerError},
}

func httpServerError(code string) bool {
	n, err := strconv.Atoi(code)
	return err == nil && n >= 500
}

// httpClientError: a 5xx, or no response at all (recorded with an empty
// status code).
func httpClientError(code string) bool { return code == "" || httpServerError(code) }

// rpcServerError: the gRPC codes that are the server's fault, as the
// OpenTelemetry semantic conventions and the SRE workbook count them.
func rpcServerError(code string) bool {
	switch code {
	case "UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS":
		return true
	}
	return false
}

type snapshot struct {
	cumulative
	bounds []float64
}

// gather reads the registry and sums each route's series.
func (s *Sampler) gather() map[Key]*snapshot {
	out := map[Key]*snapshot{}
	if s.cfg.Gatherer == nil {
		return out
	}
	mfs, _ := s.cfg.Gatherer.Gather() // a partial result is still useful
	for _, mf := range mfs {
		f, ok := families[mf.GetName()]
		if !ok || mf.GetType() != dto.MetricType_HISTOGRAM {
			continue
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			if h == nil {
				continue
			}
			var routeV, status string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case f.route:
					routeV = lp.GetValue()
				case f.status:
					status = lp.GetValue()
				}
			}
			k := Key{Kind: f.kind, Route: routeV}
			snap := out[k]
			if snap == nil {
				snap = &snapshot{bounds: bounds(h)}
				snap.buckets = make([]uint64, len(snap.bounds))
				out[k] = snap
			}
			snap.count += h.GetSampleCount()
			snap.sum += h.GetSampleSum()
			if f.isErr(status) {
				snap.errors += h.GetSampleCount()
			}
			bs := h.GetBucket()
			if len(bs) == len(snap.buckets) {
				for i, b := range bs {
					snap.buckets[i] += b.GetCumulativeCount()
				}
			}
		}
	}
	return out
}

// bounds are the finite upper bounds of a classic histogram (none for a
// native-only one).
func bounds(h *dto.Histogram) []float64 {
	var out []float64
	for _, b := range h.GetBucket() {
		if ub := b.GetUpperBound(); !math.IsInf(ub, +1) {
			out = append(out, ub)
		}
	}
	return out
}

// Keys returns the tracked routes, sorted by kind then route.
func (s *Sampler) Keys() []Key {
	s.mu.Lock()
	ks := make([]Key, 0, len(s.routes))
	for k := range s.routes {
		ks = append(ks, k)
	}
	s.mu.Unlock()
	slices.SortFunc(ks, func(a, b Key) int {
		if a.Kind != b.Kind {
			if a.Kind < b.Kind {
				return -1
			}
			return 1
		}
		if a.Route < b.Route {
			return -1
		}
		if a.Route > b.Route {
			return 1
		}
		return 0
	})
	return ks
}

// History returns the route's deltas, oldest first (nil for an unknown
// route).
func (s *Sampler) History(k Key) []Delta {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.routes[k]
	if r == nil {
		return nil
	}
	out := make([]Delta, 0, r.n)
	for i := range r.n {
		out = append(out, r.ring[(r.next-r.n+i+len(r.ring))%len(r.ring)])
	}
	return out
}

// Window merges the route's intervals that ended within the last d.
func (s *Sampler) Window(k Key, d time.Duration) Delta {
	from := s.cfg.Now().Add(-d)
	var in []Delta
	for _, x := range s.History(k) {
		if x.End.After(from) {
			in = append(in, x)
		}
	}
	return Merge(in...)
}

// Evicted counts routes not tracked (or dropped) because of MaxRoutes.
func (s *Sampler) Evicted() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.evicted
}

// Panics counts OnSample callbacks that panicked.
func (s *Sampler) Panics() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.panics
}
