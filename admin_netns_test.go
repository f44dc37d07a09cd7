package observe_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/internal/testbackend"
)

// The protection rules, from a real non-loopback client: a network
// namespace linked to this one by a private veth pair.
func TestAdminProtectionFromAnotherHost(t *testing.T) {
	ns := testbackend.NewNetNS(t)
	if _, err := ns.Exec("curl", "--version"); err != nil {
		testbackend.Missing(t, "curl", "apt-get install -y curl")
	}
	curl := func(url string, headers ...string) string {
		return curlDo(t, ns, "GET", url, "", headers...)
	}
	put := func(url, body string, headers ...string) string {
		return curlDo(t, ns, "PUT", url, body, headers...)
	}
	t.Run("no token: remote clients get 403", func(t *testing.T) {
		cleanEnv(t)
		obs, _ := initObs(t, observe.WithAdminAddr(ns.HostIP+":0"))
		base := "http://" + obs.AdminAddr()
		if got := curl(base + "/debug/pprof/cmdline"); got != "403" {
			t.Errorf("pprof from %s without token: %s, want 403", ns.PeerIP, got)
		}
		// Headers a proxy would set do not make a remote client local.
		for _, h := range []string{"X-Forwarded-For: 127.0.0.1", "X-Real-IP: 127.0.0.1", "Forwarded: for=127.0.0.1", "Host: localhost"} {
			if got := curl(base+"/debug/pprof/cmdline", h); got != "403" {
				t.Errorf("pprof from %s with %q: %s, want 403", ns.PeerIP, h, got)
			}
		}
		if got := put(base+"/loglevel", `{"level":"debug"}`); got != "403" {
			t.Errorf("PUT /loglevel from %s without token: %s, want 403", ns.PeerIP, got)
		}
		if instance.Of(obs).Levels.Level() != slog.LevelInfo {
			t.Errorf("a refused PUT changed the level to %v", instance.Of(obs).Levels.Level())
		}
		if got := curl(base + "/metrics"); got != "200" {
			t.Errorf("/metrics from remote: %s, want 200 (open)", got)
		}
		if got := curl(base + "/loglevel"); got != "200" {
			t.Errorf("GET /loglevel from remote: %s, want 200 (open)", got)
		}
	})
	t.Run("token: bearer required", func(t *testing.T) {
		cleanEnv(t)
		obs, _ := initObs(t, observe.WithAdminAddr(ns.HostIP+":0"), observe.WithAdminToken("s3cret-admin"))
		base := "http://" + obs.AdminAddr()
		if got := curl(base + "/debug/pprof/cmdline"); got != "401" {
			t.Errorf("no token: %s, want 401", got)
		}
		if got := curl(base+"/debug/pprof/cmdline", "Authorization: Bearer nope"); got != "401" {
			t.Errorf("wrong token: %s, want 401", got)
		}
		if got := curl(base+"/debug/pprof/cmdline", "Authorization: Bearer s3cret-admin"); got != "200" {
			t.Errorf("right token: %s, want 200", got)
		}
		if got := put(base+"/loglevel", `{"level":"debug"}`, "Authorization: Bearer s3cret-admi"); got != "401" {
			t.Errorf("PUT /loglevel with a token's prefix: %s, want 401", got)
		}
		if instance.Of(obs).Levels.Level() != slog.LevelInfo {
			t.Errorf("a refused PUT changed the level to %v", instance.Of(obs).Levels.Level())
		}
		if got := put(base+"/loglevel", `{"level":"debug"}`, "Authorization: Bearer s3cret-admin"); got != "200" {
			t.Errorf("PUT /loglevel with the token: %s, want 200", got)
		}
		if instance.Of(obs).Levels.Level() != slog.LevelDebug {
			t.Errorf("PUT with the token left the level at %v", instance.Of(obs).Levels.Level())
		}
	})
}

// curlDo runs curl in the namespace and returns the status code.
func curlDo(t *testing.T, ns *testbackend.NetNS, method, url, body string, headers ...string) string {
	t.Helper()
	args := []string{"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method, "--max-time", "5"}
	if body != "" {
		args = append(args, "--data-binary", body, "-H", "Content-Type: application/json")
	}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	out, err := ns.Exec(append(args, url)...)
	if err != nil {
		t.Fatalf("curl %s: %v: %s", url, err, out)
	}
	return strings.TrimSpace(string(out))
}
