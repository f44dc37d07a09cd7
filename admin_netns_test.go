package observe_test

import (
	"strings"
	"testing"

	"github.com/observekit/observe"
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
		args := []string{"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "GET", "--max-time", "5"}
		for _, h := range headers {
			args = append(args, "-H", h)
		}
		out, err := ns.Exec(append(args, url)...)
		if err != nil {
			t.Fatalf("curl %s: %v: %s", url, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	t.Run("no token: remote clients get 403", func(t *testing.T) {
		cleanEnv(t)
		obs, _ := initObs(t, observe.WithAdminAddr(ns.HostIP+":0"))
		base := "http://" + obs.AdminAddr()
		if got := curl(base + "/debug/pprof/cmdline"); got != "403" {
			t.Errorf("pprof from %s without token: %s, want 403", ns.PeerIP, got)
		}
		if got := curl(base + "/metrics"); got != "200" {
			t.Errorf("/metrics from remote: %s, want 200 (open)", got)
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
	})
}
