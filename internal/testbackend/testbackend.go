// Package testbackend starts the real backends observe's integration tests
// run against (Prometheus, Jaeger, test receivers) on 127.0.0.1, and holds
// the rule for a missing one: skip on a laptop with a hint, fail in CI.
package testbackend

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI (CI=true), where a missing backend
// is a failure, never a skip.
func InCI() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

// Missing reports a backend the test cannot get: in CI it fails the test, on
// a laptop it skips with how to get it.
func Missing(t testing.TB, what, howToGet string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s is required in CI but missing: %s", what, howToGet)
	}
	t.Skipf("%s not available (%s); skipping", what, howToGet)
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// launch starts cmd (a backend named name, its output to logs), stops it
// when the test ends (SIGTERM, then SIGKILL after 5s; its output logged if
// the test failed), and waits up to 30s for ready. A backend that cannot
// start is Missing (howTo says how to get it); one that exits or is not
// ready in time fails the test.
func launch(t testing.TB, name string, cmd *exec.Cmd, logs *LockedBuffer, howTo string, ready func() bool) {
	t.Helper()
	cmd.Stdout, cmd.Stderr = logs, logs
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		Missing(t, name, fmt.Sprintf("%s failed to start: %v; %s", cmd.Path, err, howTo))
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !ready() {
		select {
		case <-exited:
			t.Fatalf("%s exited before it was ready:\n%s", name, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 30s:\n%s", name, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Eventually polls cond every 10ms until it holds or timeout passes, and
// reports whether it held; the caller checks the condition again and fails
// with what it found.
func Eventually(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// Grep returns the lines of s containing sub: the part of a /metrics page
// or a log a failing test shows.
func Grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
