package batch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is an export hook that keeps what it is given, fails while fail
// is set, and blocks until its context ends while block is set.
type recorder struct {
	mu      sync.Mutex
	got     []int
	calls   atomic.Int32
	fail    atomic.Bool
	block   atomic.Bool
	batches []int
}

func (r *recorder) export(ctx context.Context, b []int) error {
	r.calls.Add(1)
	if r.block.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if r.fail.Load() {
		return errors.New("backend down")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, b...)
	r.batches = append(r.batches, len(b))
	return nil
}

func (r *recorder) all() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.got...)
}

func TestExportsEverythingInOrderAndInBatches(t *testing.T) {
	r := &recorder{}
	q := New(Config{MaxQueue: 100, MaxBatch: 10, Delay: time.Hour}, Hooks[int]{Export: r.export})
	for i := range 95 {
		if !q.Add(i) {
			t.Fatalf("Add(%d) refused below the bound", i)
		}
	}
	if err := q.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := r.all()
	if len(got) != 95 {
		t.Fatalf("%d exported, want 95", len(got))
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("exported out of order at %d: %v", i, got)
		}
	}
	for _, n := range r.batches {
		if n > 10 {
			t.Errorf("a batch of %d > MaxBatch 10", n)
		}
	}
	if err := q.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if q.Exported() != 95 || q.Dropped() != 0 || q.Failures() != 0 {
		t.Errorf("exported %d dropped %d failures %d", q.Exported(), q.Dropped(), q.Failures())
	}
}

func TestFullBatchWakesTheWorker(t *testing.T) {
	r := &recorder{}
	q := New(Config{MaxQueue: 100, MaxBatch: 10, Delay: time.Hour}, Hooks[int]{Export: r.export})
	defer q.Shutdown(context.Background())
	for i := range 10 {
		q.Add(i)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(r.all()) < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := len(r.all()); n != 10 {
		t.Fatalf("a full batch was not exported before the (hour-long) delay: %d", n)
	}
}

func TestBoundedDropsCounted(t *testing.T) {
	r := &recorder{}
	r.block.Store(true)
	var full atomic.Int32
	q := New(Config{MaxQueue: 50, MaxBatch: 10, Delay: time.Hour, Timeout: time.Hour},
		Hooks[int]{Export: r.export, QueueFull: func() { full.Add(1) }})
	accepted := 0
	for i := range 500 {
		if q.Add(i) {
			accepted++
		}
	}
	// At most the bound, what the worker took into a blocked export included.
	if accepted > 50 {
		t.Errorf("%d accepted with a queue of 50", accepted)
	}
	if int(q.Dropped())+accepted != 500 || int(full.Load()) != 500-accepted {
		t.Errorf("accepted %d, dropped %d, told of %d drops", accepted, q.Dropped(), full.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := q.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown past its deadline returned %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v with a 100ms deadline and a blocked export", d)
	}
	if q.Dropped()+q.Exported() != 500 {
		t.Errorf("lost without being counted: dropped %d exported %d of 500", q.Dropped(), q.Exported())
	}
	if q.Add(1) || q.Dropped()+q.Exported() != 501 {
		t.Error("Add after Shutdown accepted or not counted")
	}
}

func TestFailingBackendBacksOff(t *testing.T) {
	r := &recorder{}
	r.fail.Store(true)
	var failed atomic.Int32
	q := New(Config{MaxQueue: 1000, MaxBatch: 1, Delay: 5 * time.Millisecond},
		Hooks[int]{Export: r.export, Failed: func(error, int) { failed.Add(1) }})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			q.Add(i)
			time.Sleep(time.Millisecond)
		}
	})
	time.Sleep(800 * time.Millisecond)
	// 250ms, then 500ms, between attempts: about 3 attempts in 800ms, where
	// a 5ms delay with full batches would make hundreds.
	calls := r.calls.Load()
	if calls > 8 {
		t.Errorf("%d export attempts in 800ms against a failing backend", calls)
	}
	if calls == 0 || failed.Load() != calls || q.Failures() != uint64(calls) {
		t.Errorf("attempts %d, told of %d failures, counted %d", calls, failed.Load(), q.Failures())
	}
	// Back to normal once the backend is.
	r.fail.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for len(r.all()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if len(r.all()) == 0 {
		t.Error("nothing exported after the backend recovered")
	}
	if err := q.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestNextBackoff(t *testing.T) {
	var b time.Duration
	var seen []time.Duration
	for range 7 {
		b = nextBackoff(b, true)
		seen = append(seen, b)
	}
	want := []time.Duration{minBackoff, 2 * minBackoff, 4 * minBackoff, 8 * minBackoff, 16 * minBackoff, maxBackoff, maxBackoff}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("backoffs %v, want %v", seen, want)
		}
	}
	if nextBackoff(maxBackoff, false) != 0 {
		t.Error("a success does not reset the backoff")
	}
}

func TestShutdownTwiceAndConcurrently(t *testing.T) {
	r := &recorder{}
	q := New(Config{}, Hooks[int]{Export: r.export})
	q.Add(1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := q.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := q.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
	if got := r.all(); len(got) != 1 {
		t.Errorf("exported %v, want [1]", got)
	}
	if err := q.ForceFlush(context.Background()); err != nil {
		t.Errorf("ForceFlush after Shutdown: %v", err)
	}
}

func TestPrepareRunsBeforeTheQueueIsTaken(t *testing.T) {
	r := &recorder{}
	var q *Queue[int]
	var handed atomic.Int32
	handed.Store(5)
	q = New(Config{Delay: time.Hour}, Hooks[int]{
		Export: r.export,
		Prepare: func() {
			for n := handed.Swap(0); n > 0; n-- {
				q.Add(int(n))
			}
		},
	})
	if err := q.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(r.all()); n != 5 {
		t.Errorf("%d exported, want the 5 Prepare added", n)
	}
	_ = q.Shutdown(context.Background())
}

func TestLimiter(t *testing.T) {
	var l Limiter
	if ok, _ := l.Allow(time.Hour); !ok {
		t.Fatal("the first event held back")
	}
	for range 3 {
		if ok, _ := l.Allow(time.Hour); ok {
			t.Fatal("an event let through within the interval")
		}
	}
	time.Sleep(20 * time.Millisecond)
	ok, suppressed := l.Allow(10 * time.Millisecond)
	if !ok || suppressed != 3 {
		t.Errorf("after the interval: ok %v, suppressed %d (want true, 3)", ok, suppressed)
	}
}

// Items added while Shutdown runs are exported or counted as dropped, none
// lost: every Add is accounted for.
func TestAddRacingShutdownIsAccountedFor(t *testing.T) {
	for range 50 {
		r := &recorder{}
		q := New(Config{MaxQueue: 64, MaxBatch: 8, Delay: time.Millisecond}, Hooks[int]{Export: r.export})
		var attempts atomic.Int64
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					attempts.Add(1)
					if !q.Add(g*1_000_000+i) && q.Stopping() {
						return
					}
				}
			})
		}
		time.Sleep(time.Millisecond)
		_ = q.Shutdown(context.Background())
		wg.Wait()
		if got := int64(q.Exported() + q.Dropped()); got != attempts.Load() {
			t.Fatalf("%d Adds, %d exported + %d dropped", attempts.Load(), q.Exported(), q.Dropped())
		}
		if int(q.Exported()) != len(r.all()) {
			t.Fatalf("exported %d, the exporter got %d", q.Exported(), len(r.all()))
		}
	}
}

// A steady flow of items neither keeps the worker from a ForceFlush nor
// turns batches into trickles.
func TestSteadyFlowDoesNotStarveFlush(t *testing.T) {
	r := &recorder{}
	slow := func(ctx context.Context, b []int) error {
		time.Sleep(2 * time.Millisecond)
		return r.export(ctx, b)
	}
	q := New(Config{MaxQueue: 10000, MaxBatch: 512, Delay: 50 * time.Millisecond}, Hooks[int]{Export: slow})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			q.Add(i)
			time.Sleep(100 * time.Microsecond)
		}
	})
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := q.ForceFlush(ctx)
	cancel()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Errorf("ForceFlush under a steady flow: %v", err)
	}
	// About 16 timer ticks and one flush in 600ms; a drain that chased
	// every item would make hundreds of exports of a few items.
	if n := r.calls.Load(); n > 60 {
		t.Errorf("%d exports in 600ms of a steady trickle: batches too small", n)
	}
	_ = q.Shutdown(context.Background())
}

// An exporter that ignores its context does not hold Shutdown past its
// deadline; the worker ends when the export returns, and what it held is
// counted.
func TestShutdownDoesNotWaitForAnExporterIgnoringItsContext(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	q := New(Config{MaxBatch: 2, Delay: time.Hour}, Hooks[int]{Export: func(context.Context, []int) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return nil
	}})
	for i := range 5 {
		q.Add(i)
	}
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := q.Shutdown(ctx)
	if took := time.Since(start); took > 100*time.Millisecond+abandonGrace+200*time.Millisecond {
		t.Errorf("Shutdown took %v past a 100ms deadline", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the deadline's error", err)
	}
	close(release)
	select {
	case <-q.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the worker did not end after the export returned")
	}
	if got := q.Exported() + q.Dropped(); got != 5 {
		t.Errorf("exported %d + dropped %d = %d, want 5", q.Exported(), q.Dropped(), got)
	}
}
