package observe

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/observekit/observe/internal/anomaly"
	"github.com/observekit/observe/internal/evidence"
	"github.com/observekit/observe/internal/logging"
	"github.com/observekit/observe/internal/profiling"
	"github.com/prometheus/client_golang/prometheus"
)

// Anomaly is a route departing from its own recent behaviour, as the
// in-process detector declared it (see the README's "Anomaly detection").
type Anomaly struct {
	ID        string `json:"id"`        // unique in the process; names its profile burst on the admin endpoints
	Kind      string `json:"kind"`      // "rate" (a drop), "errors" (the server-error ratio rose), "latency" (p95 rose)
	Transport string `json:"transport"` // "http_server", "http_client", "rpc_server", "rpc_client"
	// Route is the http_route of an HTTP server, the server_address of an
	// HTTP client, the rpc_method of gRPC.
	Route string `json:"route"`
	// Version is the service.version whose own baseline the route left.
	Version string `json:"version,omitempty"`
	// Baseline and Observed are in Unit: "req/s" (rate), "ratio" (errors),
	// "seconds" (p95 latency).
	Baseline float64 `json:"baseline"`
	Observed float64 `json:"observed"`
	Unit     string  `json:"unit"`
	// Score is how far Observed is from Baseline, in the baseline's
	// standard deviations (a binomial z-score for errors).
	Score float64   `json:"score"`
	Since time.Time `json:"since"` // start of the first anomalous window
	At    time.Time `json:"at"`    // when it was declared
}

// OnAnomaly adds a hook called once for every anomaly, when it starts, in a
// goroutine of its own: a slow hook does not hold detection back, and a
// panicking one is recovered and logged. ctx is cancelled when the anomaly
// ends (or at Shutdown, which waits for running hooks by its deadline), so
// a circuit breaker can open on the call and close on <-ctx.Done(). At most
// 64 hook calls run at once; past that, calls are dropped and counted in
// observe_anomaly_hooks_dropped_total. Hooks are called only while anomaly
// detection runs (OBSERVE_ANOMALY=on, the default, with metrics on).
func (o *Observer) OnAnomaly(hook func(ctx context.Context, a Anomaly)) {
	if hook == nil {
		return
	}
	h := o.hooks
	h.mu.Lock()
	h.list = append(h.list, hook)
	h.mu.Unlock()
}

// hookList is the OnAnomaly hooks (they may be added before detection runs).
type hookList struct {
	mu   sync.Mutex
	list []func(context.Context, Anomaly)
}

// Bounds of what the watch keeps.
const (
	maxHookCalls     = 64   // hook calls running at once
	maxRecentAnomaly = 100  // ended anomalies kept for /debug/anomalies
	maxAnomalyBursts = 8    // profile bursts kept for the admin endpoints
	maxAnomalySeries = 1000 // series of observe_anomaly_active
)

// anomalyWatch runs the detector on the RED sampler's snapshots and carries
// out the responses. The detector runs on the sampler's goroutine; every
// other goroutine reads the watch under mu.
type anomalyWatch struct {
	o     *Observer
	cfg   anomalySettings
	log   *slog.Logger
	hooks *hookList

	ctx    context.Context // cancelled by stop: hooks and bursts end
	cancel context.CancelFunc
	wg     sync.WaitGroup // hook calls and bursts
	sem    chan struct{}

	mu       sync.Mutex
	det      *anomaly.Detector
	seq      uint64
	active   map[activeKey]*activeAnomaly
	recent   []endedAnomaly // oldest first, bounded
	gauge    map[gaugeKey]bool
	keepTill map[evidence.Route]time.Time // evidence kept until (active ones: zero)
	bursts   []storedBurst                // oldest first, bounded
	totals   [len(anomaly.Kinds)]uint64
	listed   []evidence.Route // what evidence has now

	burstBusy      atomic.Bool
	hooksDropped   atomic.Uint64
	hookPanics     atomic.Uint64
	burstsEvicted  atomic.Uint64 // profile bursts past maxAnomalyBursts
	seriesEvicted  atomic.Uint64 // observe_anomaly_active series past maxAnomalySeries
	recentEvicted  atomic.Uint64 // ended anomalies past maxRecentAnomaly
	burstsTaken    atomic.Uint64
	burstsSkipped  atomic.Uint64 // anomalies starting while a burst ran
	detectorRoutes atomic.Int64
	routesEvicted  atomic.Uint64 // the detector's Evicted

	activeDesc, totalDesc, hooksDroppedDesc, routesDesc, burstsDesc, evictedDesc *prometheus.Desc
}

type activeKey struct {
	key  anomaly.Key
	kind anomaly.Kind
}

type gaugeKey struct{ kind, route string }

type activeAnomaly struct {
	Anomaly
	cancel  context.CancelFunc // the hooks' context
	burstID string
}

type endedAnomaly struct {
	Anomaly
	Reason  string    `json:"reason"`
	Ended   time.Time `json:"ended"`
	Peak    float64   `json:"peak_score"`
	Last    float64   `json:"last_observed"`
	BurstID string    `json:"profile,omitempty"`
}

type storedBurst struct {
	id string
	profiling.Burst
}

func newAnomalyWatch(o *Observer) *anomalyWatch {
	cfg := o.cfg.anomaly
	ctx, cancel := context.WithCancel(context.Background())
	w := &anomalyWatch{
		o:        o,
		cfg:      cfg,
		log:      logging.Named("observe.anomaly"),
		hooks:    o.hooks,
		ctx:      ctx,
		cancel:   cancel,
		sem:      make(chan struct{}, maxHookCalls),
		det:      anomaly.New(anomaly.Config{Threshold: cfg.threshold, Version: o.cfg.serviceVersion}),
		active:   map[activeKey]*activeAnomaly{},
		gauge:    map[gaugeKey]bool{},
		keepTill: map[evidence.Route]time.Time{},
	}
	var cl prometheus.Labels
	w.activeDesc = prometheus.NewDesc("observe_anomaly_active", "1 while an anomaly of this kind is active on the route, 0 after it ended.", []string{"kind", "route"}, cl)
	w.totalDesc = prometheus.NewDesc("observe_anomalies_total", "Anomalies started, by kind.", []string{"kind"}, cl)
	w.hooksDroppedDesc = prometheus.NewDesc("observe_anomaly_hooks_dropped_total", "OnAnomaly hook calls dropped: 64 were running.", nil, cl)
	w.routesDesc = prometheus.NewDesc("observe_anomaly_routes", "Routes the anomaly detector tracks (bounded; see observe_anomaly_routes_evicted_total).", nil, cl)
	w.burstsDesc = prometheus.NewDesc("observe_anomaly_profile_bursts_total", "Profile bursts taken for anomalies.", nil, cl)
	w.evictedDesc = prometheus.NewDesc("observe_anomaly_evicted_total", "What the anomaly detection's bounded stores left out: routes (past 1000, or idle), series (of observe_anomaly_active), profiles (bursts kept), ended (anomalies kept for /debug/anomalies).", []string{"store"}, cl)
	return w
}

// observe runs one evaluation window: the detector's verdicts become
// metrics, log lines, hook calls and responses. Called on the sampler's
// goroutine only.
func (w *anomalyWatch) observe(end time.Time, ws map[anomaly.Key]anomaly.Window) {
	w.mu.Lock()
	evs := w.det.Observe(end, ws)
	w.detectorRoutes.Store(int64(w.det.Routes()))
	w.routesEvicted.Store(w.det.Evicted())
	var started []*activeAnomaly
	for _, e := range evs {
		ak := activeKey{e.Key, e.Kind}
		gk := gaugeKey{string(e.Kind), e.Key.Route}
		er := evidence.Route{Kind: e.Key.Kind, Route: e.Key.Route}
		if e.Started {
			w.seq++
			a := &activeAnomaly{Anomaly: toAnomaly(e, strconv.FormatUint(w.seq, 10))}
			w.active[ak] = a
			w.totals[kindIndex(e.Kind)]++
			if _, ok := w.gauge[gk]; !ok && len(w.gauge) >= maxAnomalySeries {
				w.evictGauge()
			}
			w.gauge[gk] = true
			w.keepTill[er] = time.Time{}
			started = append(started, a)
			continue
		}
		a := w.active[ak]
		if a == nil {
			continue
		}
		delete(w.active, ak)
		w.gauge[gk] = w.routeActive(e.Key.Route, e.Kind)
		if !w.anyActiveOn(e.Key) {
			w.keepTill[er] = end.Add(w.cfg.tail)
		}
		ended := endedAnomaly{Anomaly: a.Anomaly, Reason: e.Reason, Ended: e.At, Peak: e.Score, Last: e.Observed, BurstID: a.burstID}
		w.recent = append(w.recent, ended)
		if len(w.recent) > maxRecentAnomaly {
			w.recent = w.recent[len(w.recent)-maxRecentAnomaly:]
			w.recentEvicted.Add(1)
		}
		a.cancel()
		w.logEnd(ended)
	}
	w.updateEvidence(end)
	for _, a := range started {
		ctx, cancel := context.WithCancel(w.ctx)
		a.cancel = cancel
		w.logStart(a.Anomaly)
		w.callHooks(ctx, a.Anomaly)
	}
	if len(started) > 0 && w.cfg.profile {
		w.startBurst(started[0])
	}
	w.mu.Unlock()
}

func (w *anomalyWatch) routeActive(route string, kind anomaly.Kind) bool {
	for k := range w.active {
		if k.key.Route == route && k.kind == kind {
			return true
		}
	}
	return false
}

func (w *anomalyWatch) anyActiveOn(key anomaly.Key) bool {
	for k := range w.active {
		if k.key == key {
			return true
		}
	}
	return false
}

// evictGauge forgets one inactive series of observe_anomaly_active.
func (w *anomalyWatch) evictGauge() {
	for k, on := range w.gauge {
		if !on {
			delete(w.gauge, k)
			w.seriesEvicted.Add(1)
			return
		}
	}
}

// updateEvidence lists the routes whose traces and logs are kept: active
// anomalies, and ended ones for their tail.
func (w *anomalyWatch) updateEvidence(now time.Time) {
	var list []evidence.Route
	for r, till := range w.keepTill {
		if !till.IsZero() && !now.Before(till) {
			delete(w.keepTill, r)
			continue
		}
		list = append(list, r)
	}
	if len(list) == 0 && len(w.listed) == 0 {
		return
	}
	w.listed = list
	evidence.Set(evidence.List{Traces: w.cfg.traces, Logs: w.cfg.logs, Routes: list})
}

func (w *anomalyWatch) logStart(a Anomaly) {
	w.log.LogAttrs(context.Background(), slog.LevelWarn, "anomaly started",
		slog.String("anomaly.id", a.ID),
		slog.String("anomaly.kind", a.Kind),
		slog.String("route", a.Route),
		slog.String("transport", a.Transport),
		slog.Float64("baseline", round(a.Baseline)),
		slog.Float64("observed", round(a.Observed)),
		slog.String("unit", a.Unit),
		slog.Float64("score", round(a.Score)),
		slog.Time("since", a.Since),
	)
}

func (w *anomalyWatch) logEnd(e endedAnomaly) {
	// Past log sampling: the end of an anomaly is never sampled away.
	w.log.LogAttrs(evidence.KeepLines(context.Background()), slog.LevelInfo, "anomaly ended",
		slog.String("anomaly.id", e.ID),
		slog.String("anomaly.kind", e.Kind),
		slog.String("route", e.Route),
		slog.String("transport", e.Transport),
		slog.String("reason", e.Reason),
		slog.Float64("baseline", round(e.Baseline)),
		slog.Float64("observed", round(e.Last)),
		slog.String("unit", e.Unit),
		slog.Float64("score", round(e.Peak)),
		slog.Duration("duration", e.Ended.Sub(e.Since)),
	)
}

func round(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	if f == 0 {
		return 0
	}
	// Four significant digits: enough to read, no float noise in the line.
	p := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(f))))
	return math.Round(f*p) / p
}

// callHooks runs every hook for a in its own goroutine.
func (w *anomalyWatch) callHooks(ctx context.Context, a Anomaly) {
	w.hooks.mu.Lock()
	hooks := append([]func(context.Context, Anomaly){}, w.hooks.list...)
	w.hooks.mu.Unlock()
	for _, h := range hooks {
		select {
		case w.sem <- struct{}{}:
		default:
			w.hooksDropped.Add(1)
			continue
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer func() { <-w.sem }()
			defer func() {
				if p := recover(); p != nil {
					w.hookPanics.Add(1)
					w.log.Error("OnAnomaly hook panicked",
						slog.String("anomaly.id", a.ID),
						slog.String("panic", fmt.Sprint(p)),
						slog.String("stack", string(debug.Stack())))
				}
			}()
			h(ctx, a)
		}()
	}
}

// startBurst takes a profile burst for a unless one is running (the CPU
// profiler is one per process: anomalies starting during a burst share it).
func (w *anomalyWatch) startBurst(a *activeAnomaly) {
	if !w.burstBusy.CompareAndSwap(false, true) {
		w.burstsSkipped.Add(1)
		return
	}
	id := a.ID
	a.burstID = id
	labels := map[string]string{
		"anomaly_id":        a.ID,
		"anomaly_kind":      a.Kind,
		"anomaly_route":     a.Route,
		"anomaly_transport": a.Transport,
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer w.burstBusy.Store(false)
		b := w.o.profiler.TakeBurst(w.ctx, w.cfg.profileDuration, labels)
		w.burstsTaken.Add(1)
		w.mu.Lock()
		w.bursts = append(w.bursts, storedBurst{id: id, Burst: b})
		if len(w.bursts) > maxAnomalyBursts {
			w.bursts = w.bursts[1:]
			w.burstsEvicted.Add(1)
		}
		w.mu.Unlock()
		w.log.LogAttrs(evidence.KeepLines(context.Background()), slog.LevelInfo, "anomaly profile taken",
			slog.String("anomaly.id", id),
			slog.Int("cpu_bytes", len(b.CPU)),
			slog.String("cpu_error", b.CPUErr),
			slog.Int("goroutine_bytes", len(b.Goroutines)),
			slog.Int("pushed", b.Pushed))
	}()
}

// stop ends the hooks' contexts and any burst, clears the evidence list and
// waits for running hooks by ctx's deadline.
func (w *anomalyWatch) stop(ctx context.Context) error {
	w.cancel()
	w.mu.Lock()
	if len(w.listed) > 0 {
		evidence.Set(evidence.List{})
		w.listed = nil
	}
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("anomaly hooks still running: %w", ctx.Err())
	}
}

// Describe implements prometheus.Collector.
func (w *anomalyWatch) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{w.activeDesc, w.totalDesc, w.hooksDroppedDesc, w.routesDesc, w.burstsDesc, w.evictedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (w *anomalyWatch) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	for k, on := range w.gauge {
		v := 0.0
		if on {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(w.activeDesc, prometheus.GaugeValue, v, k.kind, k.route)
	}
	for i, kind := range anomaly.Kinds {
		ch <- prometheus.MustNewConstMetric(w.totalDesc, prometheus.CounterValue, float64(w.totals[i]), string(kind))
	}
	w.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(w.hooksDroppedDesc, prometheus.CounterValue, float64(w.hooksDropped.Load()))
	ch <- prometheus.MustNewConstMetric(w.routesDesc, prometheus.GaugeValue, float64(w.detectorRoutes.Load()))
	ch <- prometheus.MustNewConstMetric(w.burstsDesc, prometheus.CounterValue, float64(w.burstsTaken.Load()))
	for _, e := range []struct {
		store string
		n     uint64
	}{{"routes", w.routesEvicted.Load()}, {"series", w.seriesEvicted.Load()}, {"profiles", w.burstsEvicted.Load()}, {"ended", w.recentEvicted.Load()}} {
		ch <- prometheus.MustNewConstMetric(w.evictedDesc, prometheus.CounterValue, float64(e.n), e.store)
	}
}

func toAnomaly(e anomaly.Event, id string) Anomaly {
	a := Anomaly{
		ID: id, Kind: string(e.Kind), Transport: e.Key.Kind, Route: e.Key.Route, Version: e.Version,
		Baseline: e.Baseline, Observed: e.Observed, Score: e.Score, Since: e.Since, At: e.At,
	}
	switch e.Kind {
	case anomaly.Rate:
		a.Unit = "req/s"
	case anomaly.Errors:
		a.Unit = "ratio"
	case anomaly.Latency:
		a.Unit = "seconds"
	}
	return a
}

func kindIndex(k anomaly.Kind) int {
	for i, kind := range anomaly.Kinds {
		if kind == k {
			return i
		}
	}
	return 0
}
