// Package testbackend starts the real backends observe's integration tests
// run against (Prometheus, Jaeger, test receivers) on 127.0.0.1, and holds
// the rule for a missing one: skip on a laptop with a hint, fail in CI.
package testbackend

import (
	"net"
	"os"
	"strconv"
	"testing"
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
