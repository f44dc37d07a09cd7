package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/testbackend"
	"github.com/observekit/observe/middleware"
)

// The admin /debug/pprof/profile endpoint, protected by the token, serves a
// CPU profile that `go tool pprof -raw` reads, while continuous profiling
// runs (where net/http/pprof's own handler fails with "cpu profiling already
// in use") and without it.

const profToken = "pr0f-t0ken"

func TestProfilingAdminCPUProfileWhileContinuousProfilingRuns(t *testing.T) {
	recv := testbackend.StartPyroscope(t)
	obs := profInit(t, map[string]string{
		"PYROSCOPE_SERVER_ADDRESS": recv.URL,
		"OBSERVE_ADMIN_ADDR":       "127.0.0.1:0",
		"OBSERVE_ADMIN_TOKEN":      profToken,
	}, observe.WithProfileUploadInterval(time.Second))
	// A first CPU upload: pyroscope-go's collector holds the CPU profiler.
	recv.WaitFor(t, 30*time.Second, "a first CPU profile", func(ups []testbackend.PyroscopeUpload) bool {
		return len(profCPUUploads(ups)) > 0
	})

	stop := profTraffic(t)
	windowStart := time.Now()
	raw := profFetchRaw(t, obs)
	stop()
	if !strings.Contains(raw, "span_id") || !strings.Contains(raw, "endpoint") {
		t.Errorf("the admin profile has no span labels:\n%s", profHead(raw))
	}

	// Continuous profiling went on, and got the window too.
	recv.WaitFor(t, 30*time.Second, "a CPU profile after the admin window", func(ups []testbackend.PyroscopeUpload) bool {
		for _, u := range profCPUUploads(ups) {
			if !u.Until.Before(windowStart.Add(time.Second)) {
				return true
			}
		}
		return false
	})
}

func TestProfilingAdminCPUProfileWithoutServer(t *testing.T) {
	obs := profInit(t, map[string]string{
		"OBSERVE_ADMIN_ADDR":  "127.0.0.1:0",
		"OBSERVE_ADMIN_TOKEN": profToken,
	})
	stop := profTraffic(t)
	profFetchRaw(t, obs)
	stop()
}

// profTraffic serves traced requests that burn CPU until stop is called.
func profTraffic(t *testing.T) (stop func()) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /burn/{id}", func(w http.ResponseWriter, r *http.Request) { profBurn(20 * time.Millisecond) })
	srv := httptest.NewServer(middleware.HTTP(mux))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 { // two clients: samples even on a busy machine
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				resp, err := http.Get(fmt.Sprintf("%s/burn/%d", srv.URL, i))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	return func() { cancel(); wg.Wait(); srv.Close() }
}

// profFetchRaw fetches /debug/pprof/profile?seconds=1 from the admin
// listener (checking that it is protected) and returns what
// `go tool pprof -raw` prints of it.
func profFetchRaw(t *testing.T, obs *observe.Observer) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		testbackend.Missing(t, "the go command (for go tool pprof)", "install Go and put it on PATH")
	}
	url := "http://" + obs.AdminAddr() + "/debug/pprof/profile?seconds=1"
	get := func(auth string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", code)
	}
	if code, _ := get("Bearer wrong"); code != http.StatusUnauthorized {
		t.Errorf("with a wrong token: %d, want 401", code)
	}
	code, body := get("Bearer " + profToken)
	if code != http.StatusOK {
		t.Fatalf("with the token: %d: %s", code, body)
	}
	file := filepath.Join(t.TempDir(), "cpu.pb.gz")
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(goBin, "tool", "pprof", "-raw", file).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof -raw: %v\n%s", err, out)
	}
	raw := string(out)
	if !strings.Contains(raw, "samples/count cpu/nanoseconds") || !strings.Contains(raw, ".profBurn") {
		t.Errorf("go tool pprof -raw shows no CPU samples of the traffic:\n%s", profHead(raw))
	}
	return raw
}

func profHead(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}
