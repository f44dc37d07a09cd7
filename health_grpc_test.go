package observe_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/observekit/observe"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// healthProbeBin finds grpc-health-probe (PATH, then $(go env GOPATH)/bin);
// in CI a missing probe fails the test.
func healthProbeBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("grpc-health-probe"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		gopath = strings.TrimSpace(string(out))
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "grpc-health-probe")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "grpc-health-probe not found: go install github.com/grpc-ecosystem/grpc-health-probe@v0.4.63"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runProbe runs grpc-health-probe and returns its exit code.
func runProbe(t *testing.T, bin, addr string, args ...string) int {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-addr=" + addr, "-connect-timeout=2s", "-rpc-timeout=2s"}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		t.Logf("grpc-health-probe %v: exit %d: %s", args, ee.ExitCode(), strings.TrimSpace(string(out)))
		return ee.ExitCode()
	}
	t.Fatalf("grpc-health-probe: %v", err)
	return -1
}

type emptyService struct {
	testgrpc.UnimplementedTestServiceServer
	calls atomic.Int64
	delay time.Duration
}

func (s *emptyService) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	s.calls.Add(1)
	time.Sleep(s.delay)
	return &testgrpc.Empty{}, nil
}

// grpc-health-probe (what Kubernetes runs for gRPC probes) and /readyz
// agree at every step: starting, ready, a failing critical check, degraded,
// draining, stopped. Watch sees every change and ends at Shutdown.
func TestGRPCHealthProbeLifecycle(t *testing.T) {
	bin := healthProbeBin(t)
	cleanEnv(t)
	obs, _ := initObs(t, observe.WithStartupGate(), observe.WithDrainDelay(1500*time.Millisecond))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	obs.RegisterGRPCHealth(srv)
	testgrpc.RegisterTestServiceServer(srv, &emptyService{}) // registered after health: still known
	obs.AddGRPCServer(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	client := newClient(t)

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	watch, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	watched := make(chan healthpb.HealthCheckResponse_ServingStatus, 16)
	watchEnd := make(chan error, 1)
	go func() {
		for {
			m, err := watch.Recv()
			if err != nil {
				watchEnd <- err
				return
			}
			watched <- m.GetStatus()
		}
	}()
	nextWatched := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		select {
		case got := <-watched:
			if got != want {
				t.Errorf("Watch sent %v, want %v", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Watch sent nothing; want %v", want)
		}
	}
	const (
		serving    = 0
		notServing = 4
	)
	step := func(name string, probe, readyz int, args ...string) {
		t.Helper()
		if got := runProbe(t, bin, addr, args...); got != probe {
			t.Errorf("%s: grpc-health-probe %v exit %d, want %d", name, args, got, probe)
		}
		if got, body := getProbe(t, client, obs.AdminAddr(), "/readyz"); got != readyz {
			t.Errorf("%s: /readyz %d %s, want %d", name, got, body, readyz)
		}
	}

	step("starting", notServing, 503)
	step("starting, a service", notServing, 503, "-service=grpc.testing.TestService")
	nextWatched(healthpb.HealthCheckResponse_NOT_SERVING)

	obs.MarkStarted()
	nextWatched(healthpb.HealthCheckResponse_SERVING)
	step("ready", serving, 200)
	step("ready, a service", serving, 200, "-service=grpc.testing.TestService")
	if got := runProbe(t, bin, addr, "-service=no.such.Service"); got != 3 {
		t.Errorf("unknown service: exit %d, want 3 (NOT_FOUND is an RPC failure)", got)
	}
	list, err := hc.List(context.Background(), &healthpb.HealthListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "grpc.testing.TestService", "grpc.health.v1.Health"} {
		if list.GetStatuses()[name].GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("List: %q = %v", name, list.GetStatuses()[name])
		}
	}

	var failing atomic.Bool
	failing.Store(true)
	obs.AddReadinessCheck("db", func(context.Context) error {
		if failing.Load() {
			return errors.New("db down")
		}
		return nil
	})
	step("critical check failing", notServing, 503)
	nextWatched(healthpb.HealthCheckResponse_NOT_SERVING)
	failing.Store(false)
	time.Sleep(1100 * time.Millisecond) // the check TTL
	step("check passing again", serving, 200)
	nextWatched(healthpb.HealthCheckResponse_SERVING)
	obs.AddReadinessCheck("cache", func(context.Context) error { return errors.New("cold") }, observe.CheckNonCritical())
	step("degraded", serving, 200)

	obs.SetReady(false)
	step("SetReady(false)", notServing, 503)
	nextWatched(healthpb.HealthCheckResponse_NOT_SERVING)
	obs.SetReady(true)
	step("SetReady(true)", serving, 200)
	nextWatched(healthpb.HealthCheckResponse_SERVING)

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- obs.Shutdown(ctx)
	}()
	nextWatched(healthpb.HealthCheckResponse_NOT_SERVING) // at once, before the drain delay ends
	step("draining", notServing, 503)
	if _, body := getProbe(t, client, obs.AdminAddr(), "/readyz"); !strings.Contains(body, `"status":"draining"`) {
		t.Errorf("/readyz while draining: %s", body)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	select {
	case err := <-watchEnd:
		if !strings.Contains(err.Error(), "Unavailable") {
			t.Errorf("Watch ended with %v; want Unavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Watch did not end at Shutdown")
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if got := runProbe(t, bin, addr); got != 2 {
		t.Errorf("stopped: grpc-health-probe exit %d, want 2 (connection failure)", got)
	}
}
