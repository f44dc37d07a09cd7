package integration

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/internal/testbackend"
)

// The backend fault matrix of issue 8: for each fault × signal × protocol,
// Init returns at once, requests through middleware.HTTP are as fast as with
// the exporter off, memory stays bounded (queues capped), drops and failures
// are counted under observe_ and reported by a rate-limited WARN line, and
// Shutdown returns by its deadline.
//
// Every Observer installs process-wide globals, so the cells run one after
// the other. Latency: each cell alternates Observers with the signal's
// exporter off and on (the same environment otherwise, the order flipped
// every round), and compares the medians of the per-batch p99s, measured
// through ServeHTTP directly, without a network, once the queues are full
// and the exporter is failing.

// faultCell is one cell of the matrix and what it measured.
type faultCell struct {
	signal   string // traces, metrics, logs
	protocol string // grpc, http/protobuf
	fault    testbackend.Fault

	initTimes  []time.Duration // Inits with the faulty exporter on
	p99Off     []time.Duration // per batch, exporter off
	p99On      []time.Duration // per batch, exporter on and failing
	p50Off     []time.Duration
	p50On      []time.Duration
	dropped    float64         // observe_spans_dropped_total / observe_logs_dropped_total
	failures   float64         // observe_export_failures_total{signal}
	warnLines  int             // rate-limited WARN lines about it
	hits       int64           // connections or requests the fault server saw
	shutdowns  []time.Duration // Shutdowns with the faulty exporter on
	heapGrowth float64         // MiB, over the load phase
	requests   int             // in the load phase
	settle     time.Duration   // from the last Shutdown's return until the cell's goroutines were gone
	verdict    string
}

func (c *faultCell) name() string { return c.signal + "/" + c.protocol + "/" + string(c.fault) }

func (c *faultCell) p99Ratio() float64 {
	return float64(median(c.p99On)) / float64(median(c.p99Off))
}

// matrixSizes: requests before each timed batch (enough to fill every
// queue), the timed batch, rounds (pairs of Observers, exporter off and on),
// and the load phase of the first round.
func matrixSizes() (warm, batch, rounds, load int) {
	// The span queue (2048) plus a batch (512), and the log queue (2048
	// records, two a request), overflow within warm.
	switch {
	case raceEnabled && testing.Short():
		return 2600, 1000, 2, 3000
	case raceEnabled:
		return 2600, 1000, 2, 5000
	case testing.Short():
		return 3000, 2000, 3, 10000
	}
	// Batches of 10000 (about 50ms of requests): a p99 over a shorter
	// batch says mostly whether a scheduler hiccup fell in it.
	return 3000, 10000, 4, 30000
}

// p99Tolerance is the enforced bound on the p99 ratio. The target is 1.10;
// on a shared, loaded machine (the CI box has 2 cores for several jobs) the
// enforced default leaves room for noise, and the figures are logged. A
// ratio over it fails only when the p99 also grew by more than
// p99AbsTolerance: what the check is after is a request that waits on the
// exporter (a blocked export lasts the export timeout, 300ms here), not a
// few microseconds on a request that does nothing else.
func p99Tolerance() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("OBSERVE_RELIAB_P99_TOLERANCE"), 64); err == nil && v > 1 {
		return v
	}
	return 1.5
}

func p99AbsTolerance() time.Duration {
	if raceEnabled {
		// The race detector makes the exporters' own work (protobuf
		// encoding) several times dearer, and on two cores it competes
		// with the requests: still far below a blocked export.
		return 10 * time.Millisecond
	}
	return 250 * time.Microsecond
}

const (
	initBudget = 50 * time.Millisecond
	// Shutdown deadlines: the first round's, and the others' (shorter, to
	// keep the matrix quick; the check is the same).
	shutdownBudget      = 500 * time.Millisecond
	shutdownBudgetLater = 150 * time.Millisecond
	// How far past its deadline Shutdown may return (scheduling on a busy
	// machine).
	shutdownSlack = 250 * time.Millisecond
)

func TestReliabilityFaultMatrix(t *testing.T) {
	var cells []*faultCell
	for _, proto := range []string{"grpc", "http/protobuf"} {
		faults := testbackend.FaultsFor(proto)
		if !testing.Short() && !raceEnabled {
			// A healthy collector first: the reference row, telling the
			// cost of exporting from the cost of a fault. (Not under the
			// race detector, to keep the matrix within its time: healthy
			// exports are covered there by the lifecycle tests.)
			faults = append([]testbackend.Fault{testbackend.FaultNone}, faults...)
		}
		for _, fault := range faults {
			for _, sig := range []string{"traces", "metrics", "logs"} {
				cells = append(cells, &faultCell{signal: sig, protocol: proto, fault: fault})
			}
		}
	}
	start := time.Now()
	for _, c := range cells {
		t.Run(c.name(), func(t *testing.T) { runFaultCell(t, c) })
	}
	t.Logf("fault matrix: %d cells in %s (race=%v short=%v)\n%s", len(cells), time.Since(start).Round(time.Millisecond), raceEnabled, testing.Short(), matrixTable(cells))

	// The target, p99 within 10% of the same run with exporters
	// off, is checked on the median over the fault cells: one cell's p99 is
	// at the mercy of a scheduler hiccup on a shared 2-core machine (the
	// ratios scatter from 0.4 to 2.5 either way), the median over 30-odd
	// cells is not (0.85 to 0.97 measured), and a fault that slowed requests
	// down would move every cell of its kind. Not under the race detector,
	// which makes the exporters' own work several times dearer.
	//
	// As for one cell, the ratio fails only with an absolute growth behind
	// it (the median over the fault cells of p99 on minus p99 off above
	// p99AbsTolerance): with a request path of a few microseconds (p99
	// about 25µs on the quiet CI machine) the exporter's own per-request
	// work — a log record handed to the OTLP processor — is a visible
	// fraction even when the collector is healthy (the "none" rows), while
	// a request that waited on a failing exporter would show hundreds of
	// microseconds.
	if !raceEnabled {
		var ratios []float64
		var deltas []time.Duration
		for _, c := range cells {
			if c.fault != testbackend.FaultNone && len(c.p99On) > 0 && len(c.p99Off) > 0 {
				ratios = append(ratios, c.p99Ratio())
				deltas = append(deltas, median(c.p99On)-median(c.p99Off))
			}
		}
		slices.Sort(ratios)
		if n := len(ratios); n > 0 {
			m := ratios[n/2]
			if n%2 == 0 {
				m = (ratios[n/2-1] + ratios[n/2]) / 2
			}
			d := median(deltas)
			t.Logf("median p99 ratio over %d fault cells: %.2f (target 1.10), median p99 growth %s", n, m, d)
			if m > medianP99Target() && d > p99AbsTolerance() {
				t.Errorf("median p99 ratio over the fault cells %.2f > %.2f and median growth %s > %s: requests are slower while exporters fail (ratios %v)", m, medianP99Target(), d, p99AbsTolerance(), ratios)
			}
		}
	}
}

// medianP99Target is the bound on the median p99 ratio over the fault
// cells: the 1.10, loosened only by OBSERVE_RELIAB_MEDIAN_P99.
func medianP99Target() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("OBSERVE_RELIAB_MEDIAN_P99"), 64); err == nil && v > 1 {
		return v
	}
	return 1.10
}

func matrixTable(cells []*faultCell) string {
	healthy := map[string]*faultCell{}
	for _, c := range cells {
		if c.fault == testbackend.FaultNone && len(c.p99On) > 0 {
			healthy[c.signal+c.protocol] = c
		}
	}
	us := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e3, 'f', 0, 64) }
	var b strings.Builder
	b.WriteString("| signal | protocol | fault | Init median / max | p50 off / on µs | p99 off / on µs | p99 ratio | p99 vs healthy | dropped | export failures | WARN lines | server hits | Shutdown max | settled after | heap growth | verdict |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range cells {
		if len(c.p99On) == 0 || len(c.p99Off) == 0 {
			fmt.Fprintf(&b, "| %s | %s | %s | not run |||||||||||\n", c.signal, c.protocol, c.fault)
			continue
		}
		vsHealthy := "-"
		if h := healthy[c.signal+c.protocol]; h != nil && h != c {
			vsHealthy = fmt.Sprintf("%.2f", float64(median(c.p99On))/float64(median(h.p99On)))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s / %s | %s / %s | %s / %s | %.2f | %s | %.0f | %.0f | %d | %d | %s | %s | %.1f MiB | %s |\n",
			c.signal, c.protocol, c.fault,
			median(c.initTimes).Round(100*time.Microsecond), slicesMax(c.initTimes).Round(100*time.Microsecond),
			us(median(c.p50Off)), us(median(c.p50On)), us(median(c.p99Off)), us(median(c.p99On)), c.p99Ratio(), vsHealthy,
			c.dropped, c.failures, c.warnLines, c.hits,
			slicesMax(c.shutdowns).Round(time.Millisecond), c.settle.Round(10*time.Millisecond), c.heapGrowth, c.verdict)
	}
	return b.String()
}

func slicesMax(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// exporterEnv returns the variable and value that turn the signal's OTLP
// export on, and its value with the export off.
func exporterEnv(signal string) (name, on, off string) {
	switch signal {
	case "traces":
		return "OTEL_TRACES_EXPORTER", "otlp", "none"
	case "metrics":
		return "OTEL_METRICS_EXPORTER", "prometheus,otlp", "prometheus"
	case "logs":
		return "OTEL_LOGS_EXPORTER", "otlp", "none"
	}
	panic("unknown signal " + signal)
}

// warnMarker is what the rate-limited WARN line about a signal's failed
// exports or drops contains.
func warnMarker(signal string) []string {
	switch signal {
	case "traces":
		return []string{`"msg":"observe: span export failed`}
	case "metrics":
		return []string{`"msg":"observe: metrics export failed`}
	}
	return []string{`"msg":"observe: logs export failed`, `"msg":"observe: log records dropped`}
}

func runFaultCell(t *testing.T, c *faultCell) {
	reliabEnv(t)
	goroutinesBefore := runtime.NumGoroutine()
	fs := testbackend.StartFault(t, c.fault, c.protocol)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", fs.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", c.protocol)
	// Short export timeouts so a blackhole's failures show within the cell
	// (the default is 10s); pushes every 100ms so metrics fail often.
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
	t.Setenv("OTEL_METRIC_EXPORT_TIMEOUT", "300")
	if c.fault == testbackend.FaultNone {
		// A healthy collector must not fail for want of time on a busy
		// machine (or under the race detector).
		t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "10000")
		t.Setenv("OTEL_METRIC_EXPORT_TIMEOUT", "10000")
	}
	// Every exporter off; the cell's signal is switched on and off below.
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_METRICS_EXPORTER", "prometheus")
	t.Setenv("OTEL_LOGS_EXPORTER", "none")
	envName, envOn, envOff := exporterEnv(c.signal)

	warm, batch, rounds, load := matrixSizes()
	d := newDriver(workHandler())
	sink := &warnSink{}

	start := func(on bool) *observe.Observer {
		v := envOff
		if on {
			v = envOn
		}
		os.Setenv(envName, v)
		t0 := time.Now()
		obs, err := observe.Init(t.Context(), observe.WithServiceName("reliab"), observe.WithLogWriter(sink))
		took := time.Since(t0)
		if err != nil {
			t.Fatalf("Init (exporter on=%v): %v", on, err)
		}
		if on {
			c.initTimes = append(c.initTimes, took)
		}
		return obs
	}

	for r := 0; r < rounds; r++ {
		// Off first in even rounds, on first in odd ones: drift in the
		// machine's load falls on both.
		for _, on := range []bool{r%2 == 1, r%2 == 0} {
			obs := start(on)
			d.serve(t, warm)
			first := on && r == 0
			heapBefore := uint64(0)
			if first {
				heapBefore = heapInUse()
			}
			ds := d.timed(batch)
			if on {
				c.p99On = append(c.p99On, quantile(ds, 0.99))
				c.p50On = append(c.p50On, quantile(ds, 0.5))
			} else {
				c.p99Off = append(c.p99Off, quantile(ds, 0.99))
				c.p50Off = append(c.p50Off, quantile(ds, 0.5))
			}
			if first {
				c.requests = load
				d.serve(t, load)
				c.heapGrowth = mib(max(heapInUse(), heapBefore) - heapBefore)
				checkDropsCounted(t, c, obs, sink, fs.Hits)
			}
			deadline := shutdownBudgetLater
			if r == 0 {
				deadline = shutdownBudget
			}
			took, err := shutdownWithin(obs, deadline)
			if !on {
				if err != nil {
					t.Errorf("Shutdown with exporters off: %v", err)
				}
				continue
			}
			c.shutdowns = append(c.shutdowns, took)
			// An error is allowed (the flush failed, or ran out of time);
			// overrunning the deadline is not.
			if took > deadline+shutdownSlack {
				t.Errorf("Shutdown took %s with a %s deadline (err %v); goroutines then:\n%s", took, deadline, err, overrunStacks())
			}
			if first && c.signal == "traces" {
				checkSpansAccounted(t, c, obs, uint64(warm+batch+load))
			}
		}
	}
	c.hits = fs.Hits()
	// Nothing keeps running after Shutdown: the cell's goroutines end
	// (the fault server's with it; an export cut short by Shutdown's
	// deadline may take a moment to notice).
	fs.Close()
	settleStart := time.Now()
	for runtime.NumGoroutine() > goroutinesBefore && time.Since(settleStart) < 15*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	c.settle = time.Since(settleStart)
	if n := runtime.NumGoroutine(); n > goroutinesBefore {
		t.Errorf("%d goroutines still running 15s after the last Shutdown, %d before the cell:\n%s", n, goroutinesBefore, goroutineDump())
	}
	if c.fault == testbackend.FaultNone && c.failures != 0 {
		t.Errorf("healthy collector: %v export failures", c.failures)
	}
	// Under the race detector the matrix is run for its data races,
	// goroutines, accounting and memory: its timings (Init, p99, whether an
	// export reached the fault server before Shutdown on a machine shared
	// with the rest of the race suite) are those of an instrumented binary
	// several times slower, and are only logged. .ci/run enforces them in
	// the run without the race detector that follows the race suite.
	timing := t.Errorf
	if raceEnabled {
		timing = t.Logf
	}
	if c.fault != testbackend.FaultRefused && c.hits == 0 {
		timing("the fault server saw nothing: the exporter never met the fault")
	}

	if m := median(c.initTimes); m > initBudget {
		timing("Init median %s > %s (all: %v)", m, initBudget, c.initTimes)
	}
	if mx := slicesMax(c.initTimes); mx > initBudget {
		timing("Init max %s > %s (all: %v)", mx, initBudget, c.initTimes)
	}
	if ratio, delta := c.p99Ratio(), median(c.p99On)-median(c.p99Off); ratio > p99Tolerance() && delta > p99AbsTolerance() {
		timing("p99 ratio %.2f > %.2f and +%s > %s (off %v, on %v)", ratio, p99Tolerance(), delta, p99AbsTolerance(), c.p99Off, c.p99On)
	}
	if c.heapGrowth > 32 {
		t.Errorf("heap grew %.1f MiB over %d requests", c.heapGrowth, load)
	}
	switch {
	case t.Failed():
		c.verdict = "FAIL"
	case c.p99Ratio() > 1.10:
		c.verdict = "ok (p99 over the 1.10 target)"
	default:
		c.verdict = "ok"
	}
}

// checkDropsCounted waits until the signal's failures (and drops) are on
// /metrics and the WARN line about them is out, then checks the line was
// written once, however many failures there were.
func checkDropsCounted(t *testing.T, c *faultCell, obs *observe.Observer, sink *warnSink, hits func() int64) {
	t.Helper()
	dropMetric := map[string]string{"traces": "observe_spans_dropped_total", "logs": "observe_logs_dropped_total"}[c.signal]
	deadline := time.Now().Add(8 * time.Second)
	var body string
	if c.fault == testbackend.FaultNone {
		// Nothing fails: exports get through (checked for spans after
		// Shutdown) and nothing is reported.
		time.Sleep(300 * time.Millisecond)
		body = scrapeHandler(t, obs)
		c.failures, _ = metricValue(body, "observe_export_failures_total", `signal="`+c.signal+`"`)
		if dropMetric != "" {
			c.dropped, _ = metricValue(body, dropMetric)
		}
		// Drops are possible (this load outruns any exporter on a small
		// machine), failures are not.
		c.warnLines = sink.count(`"signal":"` + c.signal + `","error"`)
		if c.warnLines != 0 {
			t.Errorf("healthy collector, yet export failures reported:\n%s", sink.String())
		}
		return
	}
	for {
		body = scrapeHandler(t, obs)
		c.failures, _ = metricValue(body, "observe_export_failures_total", `signal="`+c.signal+`"`)
		if dropMetric != "" {
			v, ok := metricValue(body, dropMetric)
			if !ok {
				t.Fatalf("%s missing from /metrics:\n%s", dropMetric, testbackend.Grep(body, "observe_"))
			}
			c.dropped = v
		}
		c.warnLines = 0
		for _, m := range warnMarker(c.signal) {
			c.warnLines += sink.count(m)
		}
		// Spans and log records are dropped (the load overflows the
		// queues while the backend fails) and must be counted; metrics are
		// aggregates, which a failed push does not lose.
		dropsOK := c.signal == "metrics" || c.dropped > 0
		if c.failures > 0 && dropsOK && c.warnLines > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after %d requests: failures %v, dropped %v, WARN lines %d; want all > 0 (server hits %d)\n/metrics:\n%s\nWARN/ERROR lines:\n%s",
				c.requests, c.failures, c.dropped, c.warnLines, hits(), testbackend.Grep(body, "observe_"), sink.String())
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Rate limited: one line per kind per interval (30s), whatever the
	// number of failures.
	for _, m := range warnMarker(c.signal) {
		if n := sink.count(m); n > 1 {
			t.Errorf("%d WARN lines %s within one Observer's life: not rate limited\n%s", n, m, sink.String())
		}
	}
}

// checkSpansAccounted checks, after Shutdown, that every span served is
// accounted for: with a failing backend none is exported and every one is
// counted as dropped; with a healthy one, exported and dropped add up.
// Shutdown may return at its deadline while the span processor is still
// counting what it aborted: it gets a moment.
func checkSpansAccounted(t *testing.T, c *faultCell, obs *observe.Observer, served uint64) {
	t.Helper()
	tp := instance.Of(obs).Tracing
	deadline := time.Now().Add(2 * time.Second)
	for {
		exp, drop := tp.ExportedSpans(), tp.DroppedSpans()
		ok := exp+drop == served && (c.fault == testbackend.FaultNone || exp == 0)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after Shutdown: %d spans exported, %d dropped, of %d served", exp, drop, served)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// goroutineDump returns the stacks of observe's and OpenTelemetry's
// goroutines.
func goroutineDump() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var keep []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "observekit") || strings.Contains(g, "opentelemetry") || strings.Contains(g, "grpc") {
			keep = append(keep, g)
		}
	}
	return strings.Join(keep, "\n\n")
}
