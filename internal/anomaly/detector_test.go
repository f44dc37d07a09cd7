package anomaly

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"testing"
	"time"
)

// bounds are the default http_server_request_duration_seconds buckets.
var bounds = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// traffic simulates one route: Poisson arrivals at rps (times a daily swing
// of ±swing), log-normal latencies around median (σ 0.5, with the same
// swing), and errors with probability errRatio. Every figure the detector
// sees goes through the histogram buckets and a PromQL-style quantile, as
// the real sampler's do.
type traffic struct {
	rng      *rand.Rand
	rps      float64
	median   float64 // seconds
	errRatio float64
	swing    float64 // amplitude of the daily swing, as a fraction
}

func newTraffic(seed uint64, rps, median, errRatio float64) *traffic {
	return &traffic{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), rps: rps, median: median, errRatio: errRatio}
}

func (t *traffic) window(start time.Time, d time.Duration) Window {
	day := math.Sin(2 * math.Pi * float64(start.Unix()%86400) / 86400)
	lambda := t.rps * (1 + t.swing*day) * d.Seconds()
	n := poisson(t.rng, lambda)
	buckets := make([]uint64, len(bounds)+1)
	var errs uint64
	// latency = med·exp(0.5·z) falls in the first bucket whose bound is at
	// least it: compare z with the bounds in z units, no Exp per request.
	med := t.median * (1 + 0.6*t.swing*day)
	var zb [16]float64
	for i, b := range bounds {
		zb[i] = math.Log(b/med) / 0.5
	}
	zs := zb[:len(bounds)]
	for range n {
		buckets[sort.SearchFloat64s(zs, t.rng.NormFloat64())]++
		if t.rng.Float64() < t.errRatio {
			errs++
		}
	}
	return Window{Start: start, End: start.Add(d), Count: n, Errors: errs, P95: quantile(0.95, buckets, n)}
}

// quantile is PromQL's histogram_quantile over non-cumulative buckets.
func quantile(q float64, buckets []uint64, n uint64) float64 {
	if n == 0 {
		return math.NaN()
	}
	rank := q * float64(n)
	var cum uint64
	for i, c := range buckets {
		if float64(cum+c) >= rank && c > 0 {
			if i == len(bounds) {
				return bounds[len(bounds)-1]
			}
			lo := 0.0
			if i > 0 {
				lo = bounds[i-1]
			}
			return lo + (bounds[i]-lo)*(rank-float64(cum))/float64(c)
		}
		cum += c
	}
	return bounds[len(bounds)-1]
}

func poisson(r *rand.Rand, lambda float64) uint64 {
	if lambda > 50 {
		return uint64(max(0, math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return uint64(k)
		}
		k++
	}
}

const win = 10 * time.Second

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// sim runs windows of traffic through d: before(i) may change the traffic
// at window i; it returns the events by window index.
type sim struct {
	d      *Detector
	now    time.Time
	routes map[Key]*traffic
	events []simEvent
}

type simEvent struct {
	i int
	Event
}

func newSim(cfg Config, routes map[Key]*traffic) *sim {
	return &sim{d: New(cfg), now: t0, routes: routes}
}

func (s *sim) run(n int, before func(i int)) {
	for i := range n {
		if before != nil {
			before(i)
		}
		ws := make(map[Key]Window, len(s.routes))
		for k, t := range s.routes {
			ws[k] = t.window(s.now, win)
		}
		s.now = s.now.Add(win)
		for _, e := range s.d.Observe(s.now, ws) {
			s.events = append(s.events, simEvent{i, e})
		}
	}
}

var route = Key{Kind: "http_server", Route: "/orders/{id}"}

// seeds: every detection test runs on this many independent traffic draws.
const seeds = 20

func TestLatencyStepDetectedAndRecovers(t *testing.T) {
	for seed := range uint64(seeds) {
		tr := newTraffic(seed, 10, 0.040, 0.001)
		s := newSim(Config{Version: "v1"}, map[Key]*traffic{route: tr})
		const warm, step, after = 360, 60, 60 // an hour, then 10 minutes ×3, then back
		s.run(warm+step+after, func(i int) {
			switch i {
			case warm:
				tr.median *= 3
			case warm + step:
				tr.median /= 3
			}
		})
		start, end := find(s.events, Latency, true), find(s.events, Latency, false)
		if start == nil || end == nil {
			t.Fatalf("seed %d: latency anomaly not started and ended: %v", seed, s.events)
		}
		if lag := start.i - warm + 1; lag > 3 {
			t.Errorf("seed %d: latency ×3 detected after %d windows, want ≤ 3", seed, lag)
		}
		if r := start.Observed / start.Baseline; r < 2 || r > 4.5 {
			t.Errorf("seed %d: observed/baseline p95 = %.2f (%g/%g), want about 3", seed, r, start.Observed, start.Baseline)
		}
		if start.Version != "v1" || start.Score < 4 || start.Key != route {
			t.Errorf("seed %d: start event %+v", seed, start.Event)
		}
		if lag := end.i - (warm + step) + 1; lag < 3 || lag > 5 {
			t.Errorf("seed %d: recovery %d windows after the step ended, want 3 to 5", seed, lag)
		}
		if end.Reason != "recovered" {
			t.Errorf("seed %d: end reason %q", seed, end.Reason)
		}
		if len(s.events) != 2 {
			t.Errorf("seed %d: %d events, want the start and end of one latency anomaly: %v", seed, len(s.events), s.events)
		}
	}
}

func TestErrorJumpDetected(t *testing.T) {
	for seed := range uint64(seeds) {
		tr := newTraffic(seed, 20, 0.040, 0.001)
		s := newSim(Config{}, map[Key]*traffic{route: tr})
		const warm, step = 360, 30
		s.run(warm+step+30, func(i int) {
			switch i {
			case warm:
				tr.errRatio = 0.05
			case warm + step:
				tr.errRatio = 0.001
			}
		})
		start, end := find(s.events, Errors, true), find(s.events, Errors, false)
		if start == nil || end == nil {
			t.Fatalf("seed %d: error anomaly not started and ended: %v", seed, s.events)
		}
		if lag := start.i - warm + 1; lag > 3 {
			t.Errorf("seed %d: error ratio 0.1%%→5%% detected after %d windows, want ≤ 3", seed, lag)
		}
		if start.Baseline > 0.005 || start.Observed < 0.02 {
			t.Errorf("seed %d: baseline %g observed %g", seed, start.Baseline, start.Observed)
		}
		if end.i < warm+step {
			t.Errorf("seed %d: ended at window %d, before the errors stopped", seed, end.i)
		}
		if len(s.events) != 2 {
			t.Errorf("seed %d: events %v", seed, s.events)
		}
	}
}

func TestRateDropDetected(t *testing.T) {
	for seed := range uint64(seeds) {
		tr := newTraffic(seed, 10, 0.040, 0.001)
		s := newSim(Config{}, map[Key]*traffic{route: tr})
		const warm, step = 360, 30
		s.run(warm+step+30, func(i int) {
			switch i {
			case warm:
				tr.rps /= 10
			case warm + step:
				tr.rps *= 10
			}
		})
		start, end := find(s.events, Rate, true), find(s.events, Rate, false)
		if start == nil || end == nil {
			t.Fatalf("seed %d: rate anomaly not started and ended: %v", seed, s.events)
		}
		if lag := start.i - warm + 1; lag > 3 {
			t.Errorf("seed %d: rate drop to 10%% detected after %d windows, want ≤ 3", seed, lag)
		}
		if start.Baseline < 8 || start.Baseline > 12 || start.Observed > 3 {
			t.Errorf("seed %d: baseline %g req/s observed %g", seed, start.Baseline, start.Observed)
		}
		if len(s.events) != 2 {
			t.Errorf("seed %d: events %v", seed, s.events)
		}
	}
}

// A route that stops altogether (missing from the windows fed) is a rate
// drop too.
func TestRateStopDetected(t *testing.T) {
	tr := newTraffic(1, 10, 0.040, 0)
	s := newSim(Config{}, map[Key]*traffic{route: tr})
	s.run(120, nil)
	delete(s.routes, route)
	s.run(3, nil)
	if e := find(s.events, Rate, true); e == nil || e.Observed != 0 {
		t.Fatalf("stopped route: events %v", s.events)
	}
}

func TestNoFalsePositiveOverADay(t *testing.T) {
	routes := map[Key]*traffic{}
	for i, rps := range []float64{10, 30, 100} {
		for j, med := range []float64{0.004, 0.030, 0.400} {
			seed := uint64(100 + i*10 + j)
			tr := newTraffic(seed, rps, med, []float64{0, 0.001, 0.02}[j])
			tr.swing = 0.5
			routes[Key{Kind: "http_server", Route: fmt.Sprintf("/r%d/%d", i, j)}] = tr
		}
	}
	s := newSim(Config{}, routes)
	s.run(24*360, nil)
	for _, e := range s.events {
		t.Errorf("false positive at window %d (%s): %s %s baseline %g observed %g score %.1f",
			e.i, s.now.Add(time.Duration(e.i-24*360)*win).Format("15:04"), e.Key.Route, e.Kind, e.Baseline, e.Observed, e.Score)
	}
	for k := range routes {
		for _, kind := range Kinds {
			if !s.d.Watched(k, kind) {
				t.Errorf("%s %s not watched after a day", k.Route, kind)
			}
		}
	}
}

func TestTrafficGuard(t *testing.T) {
	tr := newTraffic(7, 1, 0.040, 0) // 10 requests a window, under the guard of 20
	s := newSim(Config{}, map[Key]*traffic{route: tr})
	s.run(600, func(i int) {
		switch {
		case i >= 360 && i < 420:
			tr.median, tr.errRatio = 0.400, 0.5
		case i >= 480 && i < 540:
			tr.rps = 0.05
		default:
			tr.median, tr.errRatio, tr.rps = 0.040, 0, 1
		}
	})
	if len(s.events) != 0 {
		t.Fatalf("below the traffic guard: %v", s.events)
	}
	for _, kind := range Kinds {
		if s.d.Watched(route, kind) {
			t.Errorf("%s watched on 1 req/s", kind)
		}
	}
}

// With steady traffic of 10 req/s, a route is watched after a minute.
func TestWatchedAfterAMinute(t *testing.T) {
	tr := newTraffic(3, 10, 0.040, 0.001)
	s := newSim(Config{}, map[Key]*traffic{route: tr})
	s.run(6, nil)
	for _, kind := range Kinds {
		if !s.d.Watched(route, kind) {
			t.Errorf("%s not watched after 6 windows of 10 req/s", kind)
		}
	}
}

func TestVersionStartsItsOwnBaseline(t *testing.T) {
	tr := newTraffic(5, 20, 0.040, 0.001)
	s := newSim(Config{Version: "v1"}, map[Key]*traffic{route: tr})
	s.run(360, nil)
	tr.median *= 4
	s.run(3, nil)
	if e := find(s.events, Latency, true); e == nil || e.Version != "v1" {
		t.Fatalf("v1 regression: %v", s.events)
	}
	if len(s.d.Active()) != 1 {
		t.Fatalf("active: %v", s.d.Active())
	}
	evs := s.d.SetVersion("v2", s.now)
	if len(evs) != 1 || evs[0].Reason != "version" || evs[0].Version != "v1" || evs[0].Started {
		t.Fatalf("SetVersion events %v", evs)
	}
	if s.d.Watched(route, Latency) || len(s.d.Active()) != 0 {
		t.Fatal("v2 kept v1's baseline")
	}
	// v2 learns its own level (the slower one) and reports its own
	// regression with its version.
	s.events = nil
	s.run(6, nil)
	if len(s.events) != 0 {
		t.Fatalf("v2 warm-up gave events: %v", s.events)
	}
	s.run(60, nil)
	tr.median *= 3
	s.run(3, nil)
	e := find(s.events, Latency, true)
	if e == nil || e.Version != "v2" {
		t.Fatalf("v2 regression: %v", s.events)
	}
	if e.Baseline < 0.1 {
		t.Errorf("v2 baseline p95 %g: not v2's own level", e.Baseline)
	}
	if s.d.SetVersion("v2", s.now) != nil {
		t.Error("same version reset the baselines")
	}
}

func TestLongAnomalyBecomesBaseline(t *testing.T) {
	tr := newTraffic(9, 20, 0.040, 0)
	s := newSim(Config{MaxActive: 10 * time.Minute}, map[Key]*traffic{route: tr})
	s.run(120, nil)
	tr.median *= 5
	s.run(120, nil)
	end := find(s.events, Latency, false)
	if end == nil || end.Reason != "rebaselined" {
		t.Fatalf("events %v", s.events)
	}
	if n := len(s.events); n != 2 {
		t.Fatalf("the new level started another anomaly: %v", s.events)
	}
	if !s.d.Watched(route, Latency) {
		t.Fatal("new level not learnt")
	}
}

func TestRoutesBounded(t *testing.T) {
	d := New(Config{MaxRoutes: 10, IdleAfter: time.Minute})
	ws := map[Key]Window{}
	for i := range 25 {
		ws[Key{"http_server", fmt.Sprint("/r", i)}] = Window{Start: t0, End: t0.Add(win), Count: 100, P95: 0.01}
	}
	d.Observe(t0.Add(win), ws)
	if d.Routes() != 10 || d.Evicted() != 15 {
		t.Fatalf("routes %d evicted %d, want 10 and 15", d.Routes(), d.Evicted())
	}
	// Idle routes are forgotten, making room.
	d.Observe(t0.Add(2*time.Minute), nil)
	if d.Routes() != 0 || d.Evicted() != 25 {
		t.Fatalf("after idling: routes %d evicted %d", d.Routes(), d.Evicted())
	}
}

// TestMemoryPerRoute measures what a tracked route costs and pins the bound
// stated in the package doc.
func TestMemoryPerRoute(t *testing.T) {
	const n = 1000
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = Key{"http_server", fmt.Sprintf("/api/v1/resource%04d/{id}", i)}
	}
	ws := make(map[Key]Window, n)
	for _, k := range keys {
		ws[k] = Window{Start: t0, End: t0.Add(win), Count: 100, Errors: 1, P95: 0.05}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d := New(Config{MaxRoutes: n})
	d.Observe(t0.Add(win), ws)
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("detector memory per route: %.0f bytes (keys' strings are shared with the caller)", per)
	if per > 600 {
		t.Errorf("%.0f bytes per route, the package doc says about 500", per)
	}
	runtime.KeepAlive(d)
	runtime.KeepAlive(ws)
}

func find(evs []simEvent, kind Kind, started bool) *simEvent {
	for i := range evs {
		if evs[i].Kind == kind && evs[i].Started == started {
			return &evs[i]
		}
	}
	return nil
}

func (e simEvent) String() string {
	verb := "end(" + e.Reason + ")"
	if e.Started {
		verb = "start"
	}
	return fmt.Sprintf("#%d %s %s %s base=%g obs=%g score=%.1f", e.i, e.Key.Route, e.Kind, verb, e.Baseline, e.Observed, e.Score)
}

func BenchmarkObserve1000Routes(b *testing.B) {
	ws := make(map[Key]Window, 1000)
	for i := range 1000 {
		ws[Key{"http_server", fmt.Sprint("/r", i)}] = Window{Count: 100, Errors: 1, P95: 0.05}
	}
	d := New(Config{MaxRoutes: 1000})
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		for k, w := range ws {
			w.Start, w.End = now, now.Add(win)
			ws[k] = w
		}
		now = now.Add(win)
		d.Observe(now, ws)
	}
}
