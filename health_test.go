package observe_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/observekit/observe"
)

// getProbe does one GET against the admin listener.
func getProbe(t *testing.T, client *http.Client, addr, path string) (int, string) {
	t.Helper()
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 128}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// A probe storm of 1000 concurrent /readyz runs each check at most once per
// TTL (1s), and every probe gets the answer.
func TestReadinessProbeStorm(t *testing.T) {
	cleanEnv(t)
	obs, _ := initObs(t)
	var runs atomic.Int64
	obs.AddReadinessCheck("db", func(ctx context.Context) error {
		runs.Add(1)
		time.Sleep(50 * time.Millisecond)
		return nil
	})
	obs.AddReadinessCheck("cache", func(ctx context.Context) error { return errors.New("cache miss storm") }, observe.CheckNonCritical())
	client := newClient(t)
	begin := time.Now()
	var wg sync.WaitGroup
	var ok, other atomic.Int64
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get("http://" + obs.AdminAddr() + "/readyz")
			if err != nil {
				other.Add(1)
				return
			}
			var body struct{ Status string }
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == 200 && body.Status == "degraded" {
				ok.Add(1)
			} else {
				other.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	allowed := int64(elapsed/time.Second) + 1
	t.Logf("1000 probes in %v: %d ok (degraded), %d other; the check ran %d times (allowed %d)", elapsed, ok.Load(), other.Load(), runs.Load(), allowed)
	if ok.Load() != 1000 {
		t.Errorf("%d of 1000 probes answered 200 degraded", ok.Load())
	}
	if runs.Load() < 1 || runs.Load() > allowed {
		t.Errorf("check ran %d times in %v; want at most once per TTL (%d)", runs.Load(), elapsed, allowed)
	}
	// The results are on /metrics.
	_, metrics := getProbe(t, client, obs.AdminAddr(), "/metrics")
	for _, want := range []string{`observe_health_check_status{check="db"} 1`, `observe_health_check_status{check="cache"} 0`,
		`observe_health_check_duration_seconds_count{check="db"}`, `observe_health_state{state="ready"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// A check that ignores its context fails the probe within its timeout, and
// while it hangs no second copy is started.
func TestReadinessHangingCheckTimesOut(t *testing.T) {
	cleanEnv(t)
	obs, _ := initObs(t)
	release := make(chan struct{})
	defer close(release)
	var runs atomic.Int64
	obs.AddReadinessCheck("hangs", func(context.Context) error { runs.Add(1); <-release; return nil }, observe.CheckTimeout(200*time.Millisecond))
	client := newClient(t)
	begin := time.Now()
	code, body := getProbe(t, client, obs.AdminAddr(), "/readyz")
	took := time.Since(begin)
	if code != 503 || !strings.Contains(body, "timed out after 200ms") {
		t.Errorf("/readyz = %d %s; want 503 with the timeout", code, body)
	}
	if took < 200*time.Millisecond || took > time.Second {
		t.Errorf("/readyz took %v with a 200ms check timeout", took)
	}
	time.Sleep(1100 * time.Millisecond) // past the TTL: the next probe asks again
	code, body = getProbe(t, client, obs.AdminAddr(), "/readyz?verbose")
	if code != 503 || !strings.Contains(body, "[-]hangs failed: timed out after 200ms (still running)") {
		t.Errorf("/readyz?verbose = %d %q", code, body)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("a hanging check was started %d times; want 1 while it still runs", n)
	}
}

// A panicking check is a failed check, the service goes on; errors are
// redacted; verbose is the Kubernetes format; exclude skips a check.
func TestReadinessReport(t *testing.T) {
	cleanEnv(t)
	obs, logs := initObs(t)
	client := newClient(t)
	addr := obs.AdminAddr()
	obs.AddReadinessCheck("panics", func(context.Context) error { panic("check boom") })
	obs.AddReadinessCheck("db", func(context.Context) error {
		return errors.New("login failed: password=hunter2")
	})
	obs.AddReadinessCheck("cache", func(context.Context) error { return errors.New("cold") }, observe.CheckNonCritical())
	obs.AddReadinessCheck("fine", func(context.Context) error { return nil })

	code, body := getProbe(t, client, addr, "/readyz")
	var rep struct {
		Status string
		State  string
		Failed map[string]string
		Checks map[string]struct {
			Status   string
			Critical bool
			Error    string
		}
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("/readyz body is not JSON: %q", body)
	}
	if code != 503 || rep.Status != "not ready" || rep.State != "ready" {
		t.Errorf("/readyz = %d %s", code, body)
	}
	if !strings.Contains(rep.Failed["panics"], "check panicked: check boom") || rep.Checks["fine"].Status != "ok" ||
		rep.Checks["cache"].Critical || !rep.Checks["db"].Critical {
		t.Errorf("report: %s", body)
	}
	if strings.Contains(body, "hunter2") || !strings.Contains(rep.Failed["db"], "REDACTED") {
		t.Errorf("check error not redacted: %q", rep.Failed["db"])
	}

	code, body = getProbe(t, client, addr, "/readyz?verbose")
	want := []string{"[+]lifecycle ok", "[-]cache failed (non-critical): cold", "[-]db failed: ", "[+]fine ok",
		"[-]panics failed: check panicked: check boom", "readyz check failed"}
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if code != 503 || len(lines) != len(want) {
		t.Fatalf("/readyz?verbose = %d %q", code, body)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("verbose line %d = %q, want %q…", i, lines[i], w)
		}
	}
	// Excluding the failing critical checks leaves a degraded but ready service.
	code, body = getProbe(t, client, addr, "/readyz?verbose=true&exclude=db&exclude=panics")
	if code != 200 || !strings.HasSuffix(body, "readyz check passed (degraded)\n") || strings.Contains(body, "]db") {
		t.Errorf("/readyz with exclude = %d %q", code, body)
	}
	if code, body = getProbe(t, client, addr, "/readyz?verbose=maybe"); code != 400 || !strings.Contains(body, "verbose") {
		t.Errorf("/readyz?verbose=maybe = %d %q; want 400 naming the parameter", code, body)
	}
	// Liveness never depends on checks.
	if code, _ := getProbe(t, client, addr, "/livez"); code != 200 {
		t.Errorf("/livez = %d with failing checks", code)
	}
	// A change of a check's outcome is logged once, whatever the probes.
	for range 3 {
		getProbe(t, client, addr, "/readyz")
	}
	n := 0
	for _, l := range logs.Lines(t) {
		if l["msg"] == "readiness check failing" && l["check"] == "db" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("failing db check logged %d times; want once:\n%s", n, logs.String())
	}
}

// The startup gate and SetReady against the one state machine; state
// changes are logged once.
func TestStartupGateAndSetReady(t *testing.T) {
	cleanEnv(t)
	obs, logs := initObs(t, observe.WithStartupGate())
	client := newClient(t)
	addr := obs.AdminAddr()
	expect := func(path string, code int, status string) {
		t.Helper()
		c, body := getProbe(t, client, addr, path)
		if c != code || !strings.Contains(body, `"status":"`+status+`"`) {
			t.Errorf("%s = %d %s; want %d %s", path, c, body, code, status)
		}
	}
	expect("/startupz", 503, "starting")
	expect("/readyz", 503, "starting")
	expect("/livez", 200, "ok")
	obs.SetReady(true) // does not end startup
	expect("/readyz", 503, "starting")
	obs.MarkStarted()
	obs.MarkStarted()
	expect("/startupz", 200, "ok")
	expect("/readyz", 200, "ok")
	obs.SetReady(false)
	expect("/readyz", 503, "not ready")
	obs.SetReady(true)
	expect("/readyz", 200, "ok")
	if n := strings.Count(logs.String(), `"health state changed"`); n != 1 {
		t.Errorf("%d state changes logged; want 1 (starting → ready):\n%s", n, logs.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := obs.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), `"health state changed"`); n != 3 {
		t.Errorf("%d state changes logged; want 3 (ready, draining, stopped)", n)
	}
	// Without the gate, Init's own starting → ready is at DEBUG: Init
	// writes no line at the default level.
	cleanEnv(t)
	_, logs2 := initObs(t)
	if logs2.String() != "" {
		t.Errorf("Init wrote log lines at INFO: %s", logs2.String())
	}
}
