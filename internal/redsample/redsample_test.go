package redsample

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

var testBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

type fixture struct {
	reg   *prometheus.Registry
	http  *prometheus.HistogramVec
	cli   *prometheus.HistogramVec
	rpc   *prometheus.HistogramVec
	clock *fakeClock
	s     *Sampler
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry(), clock: &fakeClock{t: time.Unix(1_700_000_000, 0)}}
	f.http = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_server_request_duration_seconds", Buckets: testBounds},
		[]string{"http_request_method", "http_route", "http_response_status_code"})
	f.cli = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_client_request_duration_seconds", Buckets: testBounds},
		[]string{"http_request_method", "server_address", "http_response_status_code"})
	f.rpc = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rpc_server_call_duration_seconds", Buckets: testBounds},
		[]string{"rpc_system_name", "rpc_method", "rpc_response_status_code"})
	f.reg.MustRegister(f.http, f.cli, f.rpc)
	cfg.Gatherer = f.reg
	cfg.Now = f.clock.now
	f.s = New(cfg)
	return f
}

func (f *fixture) tick() {
	f.clock.advance(10 * time.Second)
	f.s.Sample()
}

func TestDeltasPerRoute(t *testing.T) {
	f := newFixture(t, Config{})
	var got map[Key]Delta
	f.s.OnSample(func(_ time.Time, d map[Key]Delta) { got = d })

	f.http.WithLabelValues("GET", "/a", "200").Observe(0.02) // before the baseline: not counted
	f.s.Sample()
	if got != nil {
		t.Fatal("the first sample is a baseline and reports nothing")
	}
	for range 90 {
		f.http.WithLabelValues("GET", "/a", "200").Observe(0.02)
	}
	for range 10 {
		f.http.WithLabelValues("POST", "/a", "503").Observe(0.3)
	}
	f.cli.WithLabelValues("GET", "db:5432", "").Observe(0.001)
	f.cli.WithLabelValues("GET", "db:5432", "200").Observe(0.001)
	f.rpc.WithLabelValues("grpc", "pkg.S/M", "UNAVAILABLE").Observe(0.001)
	f.rpc.WithLabelValues("grpc", "pkg.S/M", "NOT_FOUND").Observe(0.001)
	f.tick()

	a := got[Key{HTTPServer, "/a"}]
	if a.Count != 100 || a.Errors != 10 {
		t.Fatalf("/a: count %d errors %d, want 100 and 10", a.Count, a.Errors)
	}
	if r := a.Rate(); math.Abs(r-10) > 1e-9 {
		t.Errorf("rate %v, want 10/s", r)
	}
	if er := a.ErrorRatio(); math.Abs(er-0.1) > 1e-9 {
		t.Errorf("error ratio %v, want 0.1", er)
	}
	if p50 := a.Quantile(0.5); p50 <= 0.01 || p50 > 0.025 {
		t.Errorf("p50 %v, want within (0.01, 0.025]", p50)
	}
	if p99 := a.Quantile(0.99); p99 <= 0.25 || p99 > 0.5 {
		t.Errorf("p99 %v, want within (0.25, 0.5]", p99)
	}
	if c := got[Key{HTTPClient, "db:5432"}]; c.Count != 2 || c.Errors != 1 {
		t.Errorf("client: %+v, want 2 calls, 1 error (no response)", c)
	}
	if r := got[Key{RPCServer, "pkg.S/M"}]; r.Count != 2 || r.Errors != 1 {
		t.Errorf("rpc: %+v, want 2 calls, 1 server error", r)
	}

	// A quiet interval is an empty delta, not a missing one.
	f.tick()
	if d, ok := got[Key{HTTPServer, "/a"}]; !ok || d.Count != 0 {
		t.Fatalf("quiet interval: %+v %v", d, ok)
	}
	if h := f.s.History(Key{HTTPServer, "/a"}); len(h) != 2 {
		t.Fatalf("history has %d intervals, want 2", len(h))
	}
	if w := f.s.Window(Key{HTTPServer, "/a"}, time.Minute); w.Count != 100 || w.Errors != 10 {
		t.Fatalf("1m window: %+v", w)
	}
	if w := f.s.Window(Key{HTTPServer, "/a"}, 5*time.Second); w.Count != 0 {
		t.Fatalf("5s window holds only the quiet interval: %+v", w)
	}
}

func TestQuantileMatchesHistogramQuantile(t *testing.T) {
	d := Delta{Bounds: []float64{1, 2, 4}, Buckets: []uint64{10, 10, 0, 0}}
	// rank 10 of 20 is the top of the first bucket; 15 is halfway through the second.
	for _, c := range []struct{ q, want float64 }{{0.5, 1}, {0.75, 1.5}, {1, 2}, {0, 0}} {
		if got := d.Quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%v = %v, want %v", c.q, got, c.want)
		}
	}
	inf := Delta{Bounds: []float64{1, 2}, Buckets: []uint64{0, 0, 5}}
	if got := inf.Quantile(0.5); got != 2 {
		t.Errorf("rank in +Inf: %v, want the highest bound 2", got)
	}
	if !math.IsNaN((Delta{Bounds: []float64{1}, Buckets: []uint64{0, 0}}).Quantile(0.5)) {
		t.Error("empty delta: want NaN")
	}
}

func TestHistoryIsBounded(t *testing.T) {
	f := newFixture(t, Config{History: 5})
	f.s.Sample()
	for i := range 12 {
		f.http.WithLabelValues("GET", "/a", "200").Observe(float64(i) / 100)
		f.tick()
	}
	h := f.s.History(Key{HTTPServer, "/a"})
	if len(h) != 5 {
		t.Fatalf("history %d, want 5", len(h))
	}
	for i := 1; i < len(h); i++ {
		if !h[i].Start.Equal(h[i-1].End) {
			t.Fatalf("history not in order at %d: %v then %v", i, h[i-1], h[i])
		}
	}
}

func TestMaxRoutesCountsWhatItRefuses(t *testing.T) {
	f := newFixture(t, Config{MaxRoutes: 3, History: 2})
	f.s.Sample()
	for i := range 5 {
		f.http.WithLabelValues("GET", fmt.Sprintf("/r%d", i), "200").Observe(0.01)
	}
	f.tick()
	if n := len(f.s.Keys()); n != 3 {
		t.Fatalf("tracked %d routes, want 3", n)
	}
	if e := f.s.Evicted(); e != 2 {
		t.Fatalf("evicted %d, want 2", e)
	}
	// After a whole history without traffic, idle routes make room.
	f.tick()
	f.tick()
	f.http.WithLabelValues("GET", "/new", "200").Observe(0.01)
	f.tick()
	found := false
	for _, k := range f.s.Keys() {
		found = found || k.Route == "/new"
	}
	if !found {
		t.Fatalf("an idle route should have made room for /new: %v", f.s.Keys())
	}
}

func TestCounterResetCountsFromZero(t *testing.T) {
	prev := cumulative{count: 100, errors: 5, sum: 10, buckets: []uint64{50, 100}}
	cur := cumulative{count: 3, errors: 1, sum: 0.3, buckets: []uint64{2, 3}}
	d := delta(prev, cur, []float64{0.1, 1})
	if d.Count != 3 || d.Errors != 1 || d.Buckets[0] != 2 || d.Buckets[1] != 1 || d.Buckets[2] != 0 {
		t.Fatalf("after a reset: %+v", d)
	}
}

func TestSubscriberPanicIsRecovered(t *testing.T) {
	f := newFixture(t, Config{})
	calls := 0
	f.s.OnSample(func(time.Time, map[Key]Delta) { panic("boom") })
	f.s.OnSample(func(time.Time, map[Key]Delta) { calls++ })
	f.s.Sample()
	f.tick()
	if calls != 1 || f.s.Panics() != 1 {
		t.Fatalf("calls %d panics %d", calls, f.s.Panics())
	}
}

func TestStartStop(t *testing.T) {
	defer goleak.VerifyNone(t)
	reg := prometheus.NewRegistry()
	s := New(Config{Gatherer: reg, Interval: time.Millisecond})
	ticks := make(chan struct{}, 1)
	s.OnSample(func(time.Time, map[Key]Delta) {
		select {
		case ticks <- struct{}{}:
		default:
		}
	})
	s.Start()
	s.Start()
	<-ticks
	s.Stop()
	s.Stop()
	New(Config{}).Stop() // never started
}
