package profiling

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/observekit/observe/internal/testbackend"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// burn does about d of CPU work on an idle machine: a fixed amount of work,
// so that a busy machine stretches the time, not the number of samples.
func burn(d time.Duration) {
	sum := sha256.Sum256([]byte("burn"))
	for range d / (125 * time.Nanosecond) { // one hash: about 125ns
		sum = sha256.Sum256(sum[:])
	}
	runtime.KeepAlive(sum)
}

func stop(t *testing.T, p *Profiler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func TestStartWithoutServerPushesNothing(t *testing.T) {
	prevMutex := runtime.SetMutexProfileFraction(0)
	defer runtime.SetMutexProfileFraction(prevMutex)

	p, err := Start(Config{ApplicationName: "svc", MutexProfileFraction: DefaultMutexProfileFraction, BlockProfileRate: DefaultBlockProfileRate})
	if err != nil {
		t.Fatal(err)
	}
	if p.Pushing() || p.DroppedProfiles() != 0 || p.UploadedProfiles() != 0 || p.ExportFailures() != 0 {
		t.Errorf("a profiler without a server: pushing %v, dropped %d, uploaded %d", p.Pushing(), p.DroppedProfiles(), p.UploadedProfiles())
	}
	if got := runtime.SetMutexProfileFraction(-1); got != DefaultMutexProfileFraction {
		t.Errorf("mutex profile fraction %d, want %d", got, DefaultMutexProfileFraction)
	}
	// Without a push, the standard CPU profiler is free for the admin endpoint.
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		t.Errorf("StartCPUProfile: %v", err)
	} else {
		pprof.StopCPUProfile()
	}
	stop(t, p)
	if got := runtime.SetMutexProfileFraction(-1); got != 0 {
		t.Errorf("mutex profile fraction %d after Stop, want 0", got)
	}
	stop(t, p) // idempotent

	var nilP *Profiler
	if nilP.Pushing() || nilP.DroppedProfiles() != 0 || nilP.Stop(context.Background()) != nil {
		t.Error("a nil *Profiler is not inert")
	}
}

func TestStartKeepsTheProgramsMutexFraction(t *testing.T) {
	prev := runtime.SetMutexProfileFraction(3)
	defer runtime.SetMutexProfileFraction(prev)
	p, err := Start(Config{MutexProfileFraction: DefaultMutexProfileFraction})
	if err != nil {
		t.Fatal(err)
	}
	if got := runtime.SetMutexProfileFraction(-1); got != 3 {
		t.Errorf("fraction %d, want the program's 3", got)
	}
	stop(t, p)
	if got := runtime.SetMutexProfileFraction(-1); got != 3 {
		t.Errorf("fraction %d after Stop, want the program's 3", got)
	}
}

func TestApplicationNameAndTags(t *testing.T) {
	if got := ApplicationName("unknown_service:profiling.test"); got != "unknown_service_profiling.test" {
		t.Errorf("ApplicationName: %q", got)
	}
	if got := ApplicationName("team/checkout-api v2{x}"); got != "team/checkout-api_v2_x_" {
		t.Errorf("ApplicationName: %q", got)
	}
	got := Tags(map[string]string{"service_version": "1.2,3", "host": "h{1}", "bad key": "v", "empty": "", "__name__": "x"})
	want := map[string]string{"service_version": "1.2_3", "host": "h_1_", "bad_key": "v"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Tags: %v, want %v", got, want)
	}
}

func TestPushNamedTaggedAuthenticated(t *testing.T) {
	recv := testbackend.StartPyroscope(t, testbackend.WithPyroscopeBasicAuth("profiler", "s3cret"))
	p, err := Start(Config{
		ServerAddress:     recv.URL,
		ApplicationName:   "checkout",
		Tags:              map[string]string{"service_version": "1.4.2", "deployment_environment": "test", "host": "h1"},
		BasicAuthUser:     "profiler",
		BasicAuthPassword: "s3cret",
		UploadInterval:    time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, p)
	if !p.Pushing() {
		t.Fatal("not pushing")
	}
	go burn(300 * time.Millisecond)
	has := func(ups []testbackend.PyroscopeUpload, kind string) bool {
		for _, u := range ups {
			if u.HasSampleType(kind) {
				return true
			}
		}
		return false
	}
	ups := recv.WaitFor(t, 20*time.Second, "cpu, heap and goroutine profiles", func(ups []testbackend.PyroscopeUpload) bool {
		return has(ups, "cpu") && has(ups, "alloc_space") && has(ups, "inuse_objects") && has(ups, "goroutine")
	})
	for _, u := range ups {
		if u.App != "checkout" || u.User != "profiler" {
			t.Errorf("upload named %q by %q, want checkout by profiler", u.App, u.User)
		}
		for k, v := range map[string]string{"service_version": "1.4.2", "deployment_environment": "test", "host": "h1"} {
			if u.Tags[k] != v {
				t.Errorf("upload tags %v: %s is not %q", u.Tags, k, v)
			}
		}
		if u.SpyName != "gospy" || !u.Multipart || u.Until.Before(u.From) {
			t.Errorf("upload spy %q, multipart %v, %s..%s", u.SpyName, u.Multipart, u.From, u.Until)
		}
	}
	// The receiver records an upload before it answers; the profiler counts
	// it once the answer is back.
	testbackend.Eventually(5*time.Second, func() bool { return p.UploadedProfiles() > 0 })
	if p.UploadedProfiles() == 0 || p.DroppedProfiles() != 0 {
		t.Errorf("uploaded %d, dropped %d", p.UploadedProfiles(), p.DroppedProfiles())
	}
}

func TestMutexAndBlockProfilesPushed(t *testing.T) {
	recv := testbackend.StartPyroscope(t)
	p, err := Start(Config{
		ServerAddress: recv.URL, ApplicationName: "svc", UploadInterval: time.Second,
		MutexProfileFraction: DefaultMutexProfileFraction, BlockProfileRate: DefaultBlockProfileRate,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, p)
	count := func(ups []testbackend.PyroscopeUpload, kind string) int {
		n := 0
		for _, u := range ups {
			if u.HasSampleType("contentions") && u.SampleTypeConfig["contentions"].DisplayName == kind {
				n++
			}
		}
		return n
	}
	recv.WaitFor(t, 20*time.Second, "mutex and block profiles", func(ups []testbackend.PyroscopeUpload) bool {
		return count(ups, "mutex_count") > 0 && count(ups, "block_count") > 0
	})
}

func TestStopFlushesTheLastProfiles(t *testing.T) {
	recv := testbackend.StartPyroscope(t)
	p, err := Start(Config{ServerAddress: recv.URL, ApplicationName: "svc", UploadInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	burn(200 * time.Millisecond)
	if n := len(recv.Uploads()); n != 0 {
		t.Fatalf("%d uploads before the first period ended", n)
	}
	start := time.Now()
	stop(t, p)
	t.Logf("Stop took %s", time.Since(start))
	var cpu, heap, goroutines bool
	for _, u := range recv.Uploads() {
		cpu = cpu || u.IsCPU() && len(u.Profile.Sample) > 0
		heap = heap || u.HasSampleType("inuse_space")
		goroutines = goroutines || u.HasSampleType("goroutine")
	}
	if !cpu || !heap || !goroutines {
		t.Errorf("after Stop: cpu %v, heap %v, goroutines %v uploaded", cpu, heap, goroutines)
	}
}

func TestServerDownDropsAndCounts(t *testing.T) {
	addr := fmt.Sprintf("http://127.0.0.1:%d", testbackend.FreePort(t)) // nothing listens
	var logs bytes.Buffer
	p, err := Start(Config{
		ServerAddress: addr, ApplicationName: "svc", UploadInterval: time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	testbackend.Eventually(20*time.Second, func() bool { return p.DroppedProfiles() >= 3 })
	start := time.Now()
	stop(t, p)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Stop took %s with the server down", d)
	}
	if p.DroppedProfiles() < 3 || p.ExportFailures() < 3 || p.UploadedProfiles() != 0 {
		t.Errorf("dropped %d, failures %d, uploaded %d", p.DroppedProfiles(), p.ExportFailures(), p.UploadedProfiles())
	}
	if n := strings.Count(logs.String(), "profile upload failed"); n != 1 {
		t.Errorf("%d WARN lines for the outage, want 1 (rate limited):\n%s", n, logs.String())
	}
}

func TestStopHonoursItsDeadlineWhenTheServerHangs(t *testing.T) {
	recv := testbackend.StartPyroscope(t)
	recv.SetMode(testbackend.PyroscopeHang)
	p, err := Start(Config{ServerAddress: recv.URL, ApplicationName: "svc", UploadInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = p.Stop(ctx)
	if d := time.Since(start); err == nil || d > time.Second {
		t.Errorf("Stop against a hanging server: %v after %s", err, d)
	}
	// The aborted uploads end at once; goleak (TestMain) checks that
	// nothing is left.
	testbackend.Eventually(5*time.Second, func() bool { return p.DroppedProfiles() > 0 })
	if p.DroppedProfiles() == 0 {
		t.Error("aborted uploads were not counted as dropped")
	}
}

func TestCPUProfileHandlerWhilePushing(t *testing.T) {
	recv := testbackend.StartPyroscope(t)
	p, err := Start(Config{ServerAddress: recv.URL, ApplicationName: "svc", UploadInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, p)
	srv := httptest.NewServer(CPUProfileHandler())
	defer srv.Close()

	// fetch takes a 1s CPU profile while a goroutine labelled work=label
	// burns CPU.
	fetch := func(label string) *profile.Profile {
		t.Helper()
		done := make(chan struct{})
		go func() {
			defer close(done)
			pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("work", label)))
			burn(300 * time.Millisecond)
		}()
		resp, err := http.Get(srv.URL + "?seconds=1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		<-done
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", resp.Status, body)
		}
		prof, err := profile.ParseData(body)
		if err != nil {
			t.Fatal(err)
		}
		if st := prof.SampleType[len(prof.SampleType)-1].Type; st != "cpu" || labelled(prof, label) == 0 {
			t.Errorf("admin profile: sample type %q, %d of %d samples labelled work=%s", st, labelled(prof, label), len(prof.Sample), label)
		}
		return prof
	}
	fetch("first")

	// By now pyroscope-go's collector runs: the standard handler would fail.
	if err := pprof.StartCPUProfile(io.Discard); err == nil {
		pprof.StopCPUProfile()
		t.Fatal("StartCPUProfile worked while pushing: pyroscope-go is not collecting")
	}

	fetch("second")
	// The window was pushed as well: the collection goes on.
	recv.WaitFor(t, 10*time.Second, "the admin window pushed", func(ups []testbackend.PyroscopeUpload) bool {
		for _, u := range ups {
			if u.IsCPU() && labelled(u.Profile, "second") > 0 {
				return true
			}
		}
		return false
	})
}

func labelled(p *profile.Profile, work string) int {
	n := 0
	for _, s := range p.Sample {
		if len(s.Label["work"]) > 0 && s.Label["work"][0] == work {
			n++
		}
	}
	return n
}

func TestFixUntil(t *testing.T) {
	now := time.Unix(100, 0)
	for _, c := range []struct{ query, want string }{
		{"from=50000000000&until=60000000000", "from=50000000000&until=60000000000"},
		{"from=50000000000&until=40000000000", "from=50000000000&until=100000000000"},
		{"from=150000000000&until=40000000000", "from=150000000000&until=150000000000"},
		{"name=x", "name=x"},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://p/ingest?"+c.query, nil)
		orig := req.URL
		fixUntil(req, now)
		if req.URL.RawQuery != c.want {
			t.Errorf("fixUntil(%s) = %s, want %s", c.query, req.URL.RawQuery, c.want)
		}
		if orig.RawQuery != c.query {
			t.Error("fixUntil changed the caller's URL")
		}
	}
}

func TestUploadLogRateLimits(t *testing.T) {
	var buf bytes.Buffer
	l := newUploadLog(slog.New(slog.NewTextHandler(&buf, nil)))
	for range 5 {
		l.Errorf("upload profile: %v", "connection refused")
	}
	l.Errorf(queueFullMessage + ", dropping a profile job")
	if n := strings.Count(buf.String(), "level=WARN"); n != 1 {
		t.Errorf("%d WARN lines, want 1:\n%s", n, buf.String())
	}
	if l.queueFull.Load() != 1 {
		t.Errorf("queue-full drops %d, want 1", l.queueFull.Load())
	}
	l.Debugf("chatter %d", 1) // below the handler's level: nothing
	if strings.Contains(buf.String(), "chatter") {
		t.Error("debug chatter logged at info")
	}
}
