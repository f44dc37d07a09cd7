package profiling

import (
	"context"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/observekit/observe/internal/testbackend"
)

// A burst without a server: a CPU profile of the work done during it and a
// goroutine profile, both valid pprof, nothing pushed.
func TestBurstWithoutServer(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(1100 * time.Millisecond)
		for time.Now().Before(deadline) {
			burn(10 * time.Millisecond)
		}
	}()
	var p *Profiler
	b := p.TakeBurst(context.Background(), time.Second, map[string]string{"anomaly_kind": "latency"})
	<-done
	if b.CPUErr != "" || b.Pushed != 0 {
		t.Fatalf("burst: cpu error %q, pushed %d", b.CPUErr, b.Pushed)
	}
	cpu, err := profile.ParseData(b.CPU)
	if err != nil || len(cpu.Sample) == 0 {
		t.Fatalf("CPU profile: %v (%d samples)", err, len(cpu.Sample))
	}
	if d := b.End.Sub(b.Start); d < time.Second || d > 3*time.Second {
		t.Errorf("CPU window %s, want about 1s", d)
	}
	g, err := profile.ParseData(b.Goroutines)
	if err != nil || len(g.Sample) == 0 {
		t.Fatalf("goroutine profile: %v", err)
	}
}

// With a server, the burst's CPU window is cut from the running continuous
// collection, and both profiles are pushed with the service's tags and the
// anomaly's labels.
func TestBurstPushedWithContinuousProfiling(t *testing.T) {
	py := testbackend.StartPyroscope(t)
	p, err := Start(Config{ServerAddress: py.URL, ApplicationName: "svc", Tags: map[string]string{"service_version": "v2"}, UploadInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, p)
	b := p.TakeBurst(context.Background(), time.Second, map[string]string{"anomaly_kind": "latency", "anomaly_route": "/orders/{id}"})
	if b.CPUErr != "" || b.Pushed != 2 {
		t.Fatalf("burst: cpu error %q, pushed %d", b.CPUErr, b.Pushed)
	}
	ups := py.Uploads()
	apps := map[string]testbackend.PyroscopeUpload{}
	for _, u := range ups {
		if u.Tags["anomaly_kind"] == "latency" {
			apps[u.App] = u
		}
	}
	cpu, ok := apps["svc.cpu"]
	if !ok || !cpu.IsCPU() {
		t.Fatalf("no CPU burst upload among %d uploads: %v", len(ups), apps)
	}
	if cpu.Tags["anomaly_route"] != "/orders/_id_" || cpu.Tags["service_version"] != "v2" {
		t.Errorf("CPU burst tags %v", cpu.Tags)
	}
	if _, ok := apps["svc.goroutines"]; !ok {
		t.Errorf("no goroutine burst upload: %v", apps)
	}
	if p.UploadedProfiles() < 2 {
		t.Errorf("uploads counted: %d", p.UploadedProfiles())
	}
}

// ctx ends a burst early (Shutdown).
func TestBurstEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	var p *Profiler
	p.TakeBurst(ctx, 30*time.Second, nil)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("burst took %s after its context ended", d)
	}
}
