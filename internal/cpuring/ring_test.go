package cpuring

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	pyroscopepprof "github.com/grafana/pyroscope-go/http/pprof"
	"github.com/grafana/pyroscope-go/upstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRingBoundsAndEvictions(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := New(3, 100)
	for i := range 5 {
		r.Add(t0.Add(time.Duration(i)*10*time.Second), t0.Add(time.Duration(i+1)*10*time.Second), bytes.Repeat([]byte{byte(i)}, 10))
	}
	s := r.Stats()
	if s.Profiles != 3 || s.Bytes != 30 || s.Added != 5 || s.Evicted != 2 {
		t.Fatalf("after 5 adds to a 3-profile ring: %+v", s)
	}
	if !s.Oldest.Equal(t0.Add(20*time.Second)) || !s.Newest.Equal(t0.Add(50*time.Second)) {
		t.Errorf("oldest %v newest %v: the two oldest should be gone", s.Oldest, s.Newest)
	}
	// The byte bound: a 90-byte profile pushes out the two oldest.
	r.Add(t0.Add(50*time.Second), t0.Add(60*time.Second), make([]byte, 90))
	if s = r.Stats(); s.Profiles != 2 || s.Bytes != 100 || s.Evicted != 4 {
		t.Fatalf("after a 90-byte add to a 100-byte ring: %+v", s)
	}
	// Larger than the whole bound: refused and counted, the ring unchanged.
	r.Add(t0, t0, make([]byte, 101))
	if s = r.Stats(); s.Profiles != 2 || s.TooLarge != 1 {
		t.Fatalf("after a too-large add: %+v", s)
	}
	r.Add(t0, t0, nil)
	if s = r.Stats(); s.Added != 6 {
		t.Errorf("an empty profile was counted: %+v", s)
	}
	// Only profiles overlapping the range are searched.
	if got := len(r.overlapping(t0.Add(55*time.Second), t0.Add(56*time.Second))); got != 1 {
		t.Errorf("overlapping: %d, want 1", got)
	}
	if _, err := r.ForSpans(map[string]bool{"x": true}, t0, t0.Add(time.Second)); !errors.Is(err, ErrNoProfiles) {
		t.Errorf("ForSpans before the kept profiles: %v, want ErrNoProfiles", err)
	}
}

func TestRingUploadKeepsOnlyCPU(t *testing.T) {
	r := New(10, 1<<20)
	now := time.Now()
	r.Upload(&upstream.UploadJob{Units: "goroutines", Format: upstream.FormatPprof, Profile: []byte("g"), StartTime: now, EndTime: now})
	r.Upload(&upstream.UploadJob{Units: "samples", Format: upstream.FormatPprof, Profile: []byte("c"), StartTime: now, EndTime: now})
	r.Upload(nil)
	r.Flush()
	if s := r.Stats(); s.Profiles != 1 || s.Bytes != 1 {
		t.Errorf("kept %+v, want the one CPU profile", s)
	}
}

func TestUnreadableProfileIsSkipped(t *testing.T) {
	r := New(10, 1<<20)
	now := time.Now()
	r.Add(now, now.Add(time.Second), []byte("not a profile"))
	cut, err := r.ForSpans(map[string]bool{"a": true}, now, now.Add(time.Second))
	if err != nil || cut.Profile != nil || cut.Searched != 1 || cut.Unreadable != 1 {
		t.Errorf("cut %+v, err %v: want one searched, unreadable, no profile", cut, err)
	}
}

//go:noinline
func burnA(d time.Duration) int { return spin(d) }

//go:noinline
func burnB(d time.Duration) int { return spin(d) }

func spin(d time.Duration) int {
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := range 10000 {
			n += i * i
		}
	}
	return n
}

// A real collector: samples taken under span_id=a and span_id=b land in the
// ring, and the cut for a has a's function only.
func TestCollectorCutsOneSpansSamples(t *testing.T) {
	r := New(0, 0)
	c, err := StartCollector(r, 300*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx := context.Background()
	// Alternate until both spans have samples: on a loaded machine a
	// burning goroutine gets a fraction of a core, so wall time says
	// little about how many samples it earns.
	withA, withB := 0, 0
	var cut Cut
	for round := 0; round < 20 && (withA < 3 || withB < 3); round++ {
		pprof.Do(ctx, pprof.Labels(SpanLabel, "aaaaaaaaaaaaaaaa"), func(context.Context) { burnA(150 * time.Millisecond) })
		pprof.Do(ctx, pprof.Labels(SpanLabel, "bbbbbbbbbbbbbbbb"), func(context.Context) { burnB(150 * time.Millisecond) })
		time.Sleep(350 * time.Millisecond) // the profile holding them is cut
		withA, withB = countIn(t, r, "aaaaaaaaaaaaaaaa", ".burnA", start), countIn(t, r, "bbbbbbbbbbbbbbbb", ".burnB", start)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil { // idempotent
		t.Fatal(err)
	}
	end := time.Now()
	if withA < 3 || withB < 3 {
		t.Fatalf("after 20 rounds: %d samples of a in burnA, %d of b in burnB; want 3 each", withA, withB)
	}
	cut, err = r.ForSpans(map[string]bool{"aaaaaaaaaaaaaaaa": true}, start, end)
	if err != nil || cut.Profile == nil {
		t.Fatalf("a's cut: %+v, %v", cut, err)
	}
	for _, s := range cut.Profile.Sample {
		if got := s.Label[SpanLabel]; len(got) != 1 || got[0] != "aaaaaaaaaaaaaaaa" {
			t.Errorf("a sample labelled %v in a's cut", s.Label)
		}
		if stackHas(s, ".burnB") {
			t.Errorf("a sample in burnB in a's cut")
		}
	}
	// It is a valid profile that round-trips.
	var buf bytes.Buffer
	if err := cut.Profile.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := profile.Parse(&buf); err != nil {
		t.Fatalf("the cut does not parse back: %v", err)
	}
	sum := Summarize(cut.Profile)
	if sum.Samples < 3 || sum.CPUNanos < 3*sum.PeriodNs || sum.Flame == nil || sum.Flame.Value != sum.CPUNanos {
		t.Fatalf("summary %+v", sum)
	}
	found := false
	for _, f := range sum.Top {
		if strings.HasSuffix(f.Name, ".burnA") && f.Cum > 0 {
			found = true
		}
		if strings.HasSuffix(f.Name, ".burnB") {
			t.Errorf("burnB in a's top functions")
		}
	}
	if !found {
		t.Errorf("burnA not in the top functions: %+v", sum.Top)
	}
	// Unknown span: profiles searched, nothing matched.
	cut, err = r.ForSpans(map[string]bool{"cccccccccccccccc": true}, start, end)
	if err != nil || cut.Profile != nil || cut.Searched == 0 {
		t.Errorf("unknown span: %+v, %v", cut, err)
	}
}

// The standard pprof handler (pyroscope-go's) interrupts the collector and
// gets a profile; the collector keeps collecting afterwards.
func TestCollectorYieldsToThePprofHandler(t *testing.T) {
	r := New(0, 0)
	c, err := StartCollector(r, 200*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	rec := httptest.NewRecorder()
	go burnA(1200 * time.Millisecond)
	pyroscopepprof.Profile(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/profile?seconds=1", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("pprof handler while the collector runs: %d %s", rec.Code, rec.Body.String())
	}
	if _, err := profile.Parse(rec.Body); err != nil {
		t.Fatalf("pprof handler's profile: %v", err)
	}
	before := r.Stats().Added
	time.Sleep(700 * time.Millisecond)
	if after := r.Stats().Added; after <= before {
		t.Errorf("the collector did not resume: %d profiles before, %d after", before, after)
	}
}

// Profiles come every period (pyroscope-go's collector, left to itself,
// cuts one every second tick).
func TestCollectorPeriod(t *testing.T) {
	r := New(0, 0)
	c, err := StartCollector(r, 400*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	go spin(2 * time.Second)
	time.Sleep(2100 * time.Millisecond)
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.items) < 4 {
		t.Fatalf("%d profiles in 2.1 s at a 400 ms period, want 5 or 6", len(r.items))
	}
	// Ticks jitter on a loaded machine; the durations average the period.
	var ds []time.Duration
	for _, e := range r.items[:len(r.items)-1] { // the last one is cut by Stop
		ds = append(ds, e.end.Sub(e.start))
	}
	slices.Sort(ds)
	if med := ds[len(ds)/2]; med < 300*time.Millisecond || med > 550*time.Millisecond {
		t.Errorf("profiles of %v at a 400 ms period: median %v", ds, med)
	}
}

func TestSummaryBounds(t *testing.T) {
	// A synthetic profile with 3000 distinct leaf functions: the flame
	// graph stays within maxNodes and says it was truncated.
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Period:     10_000_000,
	}
	main := &profile.Function{ID: 1, Name: "main.main"}
	p.Function = append(p.Function, main)
	for i := range 3000 {
		f := &profile.Function{ID: uint64(i + 2), Name: "pkg.f" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + itoa(i)}
		loc := &profile.Location{ID: uint64(i + 1), Line: []profile.Line{{Function: f}, {Function: main}}} // f inlined into main
		p.Function = append(p.Function, f)
		p.Location = append(p.Location, loc)
		p.Sample = append(p.Sample, &profile.Sample{Location: []*profile.Location{loc}, Value: []int64{1, 10_000_000}})
	}
	s := Summarize(p)
	if s.Samples != 3000 || s.CPUNanos != 3000*10_000_000 || len(s.Top) != maxTop {
		t.Fatalf("summary: samples %d cpu %d top %d", s.Samples, s.CPUNanos, len(s.Top))
	}
	if n := countNodes(s.Flame); n > maxNodes || !s.Truncated {
		t.Errorf("flame graph: %d nodes (max %d), truncated %v", n, maxNodes, s.Truncated)
	}
	if len(s.Flame.Children) != 1 || s.Flame.Children[0].Name != "main.main" || s.Flame.Children[0].Value != s.CPUNanos {
		t.Errorf("the inlined caller is not the one root frame: %+v", s.Flame.Children)
	}
	for _, f := range s.Top {
		if f.Name == "main.main" && f.Self != 0 {
			t.Errorf("main.main has self time %d; it is only ever a caller", f.Self)
		}
	}
	if Summarize(nil).Flame != nil {
		t.Error("a nil profile has a flame graph")
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

func countNodes(n *Node) int {
	c := 1
	for _, k := range n.Children {
		c += countNodes(k)
	}
	return c
}

// countIn reports how many samples of span id have fn on their stack.
func countIn(t *testing.T, r *Ring, id, fn string, from time.Time) int {
	t.Helper()
	cut, err := r.ForSpans(map[string]bool{id: true}, from, time.Now())
	if errors.Is(err, ErrNoProfiles) || cut.Profile == nil {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range cut.Profile.Sample {
		if stackHas(s, fn) {
			n += int(s.Value[0])
		}
	}
	return n
}

func stackHas(s *profile.Sample, suffix string) bool {
	for _, loc := range s.Location {
		for _, l := range loc.Line {
			if l.Function != nil && strings.HasSuffix(l.Function.Name, suffix) {
				return true
			}
		}
	}
	return false
}
