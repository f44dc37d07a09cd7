package observe

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

func TestDrainDelayConfig(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for _, tc := range []struct {
		name    string
		env     map[string]string
		opts    []Option
		servers bool
		want    time.Duration
	}{
		{"default", nil, nil, true, 0},
		{"kubernetes with servers", map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, nil, true, 5 * time.Second},
		{"kubernetes without servers", map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, nil, false, 5 * time.Second},
		{"variable", map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1", "OBSERVE_DRAIN_DELAY": "0"}, nil, true, 0},
		{"variable outside kubernetes", map[string]string{"OBSERVE_DRAIN_DELAY": "1500ms"}, nil, false, 1500 * time.Millisecond},
		{"option wins", map[string]string{"OBSERVE_DRAIN_DELAY": "3s"}, []Option{WithDrainDelay(time.Second)}, true, time.Second},
	} {
		c, err := loadConfig(env(tc.env), tc.opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := c.drainDelay(); got != tc.want {
			t.Errorf("%s: drain delay %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, bad := range []string{"5", "-1s", "soon", "11m"} {
		_, err := loadConfig(env(map[string]string{"OBSERVE_DRAIN_DELAY": bad}), nil)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Variable != "OBSERVE_DRAIN_DELAY" || !strings.Contains(err.Error(), "Go duration") {
			t.Errorf("OBSERVE_DRAIN_DELAY=%q: %v; want a ConfigError naming the variable and the accepted values", bad, err)
		}
	}
}

// ShutdownOnSignal: a real SIGTERM to this process ends in Shutdown, with
// the servers drained and the lifecycle stopped.
func TestShutdownOnSignal(t *testing.T) {
	c, err := loadConfig(func(string) string { return "" }, []Option{WithAdminAddr("off"), WithLogWriter(&strings.Builder{}), WithServiceName("sig")})
	if err != nil {
		t.Fatal(err)
	}
	o, err := start(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- o.shutdownOnSignal(context.Background(), 5*time.Second, func() {
			_ = syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ShutdownOnSignal: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not lead to Shutdown")
	}
	if st, _, _ := o.health.snapshot(); st != stateStopped {
		t.Errorf("state after ShutdownOnSignal: %v", st)
	}
	// ctx done works too (and the second Shutdown returns the first's result).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := o.ShutdownOnSignal(ctx, time.Second); err != nil {
		t.Errorf("ShutdownOnSignal after ctx done: %v", err)
	}
}

// FuzzProbeQuery: any query string is either a clear error or a parsed
// query, and the verbose report stays one line per check, whatever the
// names and errors hold.
func FuzzProbeQuery(f *testing.F) {
	for _, s := range []string{"", "verbose", "verbose=1", "verbose=false", "verbose&exclude=db&exclude=cache",
		"verbose=maybe", "%zz", "exclude=%0Aevil", "verbose=TRUE;x=1", strings.Repeat("a", 5000)} {
		f.Add(s, "db\nfake", "line1\nline2")
	}
	f.Fuzz(func(t *testing.T, raw, name, errText string) {
		q, err := parseProbeQuery(raw)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		r := readiness{state: stateReady, manual: true, checks: []checkReport{
			{Name: name, Critical: true, Err: errText},
			{Name: "ok", Critical: false},
		}}
		r.failed = errText != ""
		if q.exclude[name] {
			r.checks, r.failed = r.checks[1:], false
		}
		rec := httptest.NewRecorder()
		writeReadiness(rec, r, true)
		body := rec.Body.String()
		lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		if want := len(r.checks) + 2; len(lines) != want {
			t.Fatalf("verbose report has %d lines, want %d: %q", len(lines), want, body)
		}
		for _, l := range lines[:len(lines)-1] {
			if !strings.HasPrefix(l, "[+]") && !strings.HasPrefix(l, "[-]") {
				t.Fatalf("line %q is not [+]/[-]", l)
			}
		}
		if (rec.Code == 200) != (errText == "" || q.exclude[name]) {
			t.Fatalf("code %d with error %q excluded=%v", rec.Code, errText, q.exclude[name])
		}
		if utf8.ValidString(name) && utf8.ValidString(errText) {
			rec = httptest.NewRecorder()
			writeReadiness(rec, r, false)
			if !strings.HasPrefix(rec.Body.String(), "{") {
				t.Fatalf("JSON report: %q", rec.Body.String())
			}
		}
	})
}
