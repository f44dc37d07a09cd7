package integration

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/internal/testbackend"
)

// A million requests through middleware.HTTP with every signal exporting to
// a collector that never answers: the export queues fill and stay capped,
// the heap and the goroutine count stay flat, every span is counted as
// dropped, and the WARN lines about it stay few.
//
// The requests go straight to ServeHTTP with a cheap ResponseWriter, from
// one goroutine per core. With -short the run is 100k requests.
func TestReliabilityMillionRequests(t *testing.T) {
	total := 1_000_000
	if testing.Short() {
		total = 100_000
	}
	reliabEnv(t)
	fs := testbackend.StartFault(t, testbackend.FaultBlackhole, "grpc")
	exportEverySignal(t, fs.URL, "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "200")
	t.Setenv("OTEL_METRIC_EXPORT_TIMEOUT", "300")

	sink := &warnSink{}
	obs, err := observe.Init(t.Context(), observe.WithServiceName("million"), observe.WithLogWriter(sink))
	if err != nil {
		t.Fatal(err)
	}
	h := workHandler()
	workers := max(2, runtime.GOMAXPROCS(0))
	const checkpoints = 10
	per := total / workers / checkpoints

	newDriver(h).serve(t, 5000) // fill the queues first
	base := heapInUse()
	baseG := runtime.NumGoroutine()
	var heaps []uint64
	var maxG int
	start := time.Now()
	for cp := 0; cp < checkpoints; cp++ {
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				newDriver(h).serve(t, per)
			}()
		}
		wg.Wait()
		heaps = append(heaps, heapInUse())
		maxG = max(maxG, runtime.NumGoroutine())
	}
	elapsed := time.Since(start)
	served := uint64(5000 + per*workers*checkpoints)

	body := scrapeHandler(t, obs)
	spansDropped, _ := metricValue(body, "observe_spans_dropped_total")
	logsDropped, _ := metricValue(body, "observe_logs_dropped_total")
	failures := map[string]float64{}
	for _, sig := range []string{"traces", "metrics", "logs"} {
		failures[sig], _ = metricValue(body, "observe_export_failures_total", `signal="`+sig+`"`)
	}
	took, _ := shutdownWithin(obs, time.Second)

	var peak uint64
	for _, hp := range heaps {
		peak = max(peak, hp)
	}
	t.Logf("%d requests in %s (%.0f req/s, %d workers, race=%v): live heap %.1f MiB after the first 5000, then per %d: %v MiB, peak %.1f MiB; goroutines %d → max %d",
		served, elapsed.Round(time.Millisecond), float64(served)/elapsed.Seconds(), workers, raceEnabled,
		mib(base), per*workers, mibs(heaps), mib(peak), baseG, maxG)
	t.Logf("observe_spans_dropped_total %.0f, observe_logs_dropped_total %.0f, observe_export_failures_total %v; Shutdown %s; WARN lines: %d",
		spansDropped, logsDropped, failures, took.Round(time.Millisecond), strings.Count(sink.String(), "\n"))

	// Bounded: the live heap does not grow with the request count. The
	// queues hold 2048 spans and 2048 log records at most (a few MiB).
	if growth := mib(peak) - mib(base); growth > 32 {
		t.Errorf("live heap grew by %.1f MiB over the run (from %.1f MiB): not bounded", growth, mib(base))
	}
	if last, first := heaps[len(heaps)-1], heaps[0]; last > first+16<<20 {
		t.Errorf("live heap still growing: %.1f MiB after the first tenth, %.1f MiB at the end", mib(first), mib(last))
	}
	if maxG > baseG+50 {
		t.Errorf("goroutines grew from %d to %d", baseG, maxG)
	}
	// Counted: every span dropped (nothing can get through), failures of
	// each signal, log records dropped from the full queue.
	if spansDropped < float64(served)-2*2048 { // at most the queue, and what the worker took to export
		t.Errorf("observe_spans_dropped_total %.0f, want about %d (every span but those queued)", spansDropped, served)
	}
	for sig, n := range failures {
		if n == 0 {
			t.Errorf("observe_export_failures_total{signal=%q} is 0", sig)
		}
	}
	if logsDropped < float64(served) {
		t.Errorf("observe_logs_dropped_total %.0f after %d requests of two records each against a blackhole", logsDropped, served)
	}
	deadline := time.Now().Add(2 * time.Second)
	for instance.Of(obs).Tracing.DroppedSpans() != served && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if d := instance.Of(obs).Tracing.DroppedSpans(); d != served || instance.Of(obs).Tracing.ExportedSpans() != 0 {
		t.Errorf("after Shutdown: %d spans dropped, %d exported; want %d and 0", d, instance.Of(obs).Tracing.ExportedSpans(), served)
	}
	if took > time.Second+shutdownSlack {
		t.Errorf("Shutdown took %s with a 1s deadline", took)
	}
	// Reported, rate limited: per kind, one line per 30s.
	limit := 1 + int(elapsed/(30*time.Second))
	for _, m := range []string{`"msg":"observe: span export failed`, `"msg":"observe: metrics export failed`, `"msg":"observe: logs export failed`, `"msg":"observe: log records dropped`} {
		n := sink.count(m)
		if n == 0 || n > limit+1 {
			t.Errorf("%d lines %s, want 1 to %d:\n%s", n, m, limit+1, sink.String())
		}
	}
}

func mibs(hs []uint64) []float64 {
	out := make([]float64, len(hs))
	for i, h := range hs {
		out[i] = float64(int(mib(h)*10)) / 10
	}
	return out
}
