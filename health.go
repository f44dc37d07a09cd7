package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The lifecycle shared by the HTTP probes and gRPC health:
// starting → ready → draining → stopped. It only moves forward.
type lifeState int

const (
	stateStarting lifeState = iota
	stateReady
	stateDraining
	stateStopped
)

var stateNames = [...]string{"starting", "ready", "draining", "stopped"}

func (s lifeState) String() string { return stateNames[s] }

const (
	defaultCheckTimeout = time.Second
	defaultCheckTTL     = time.Second
	maxChecks           = 256 // checks are registered by code; a loop adding names is a bug, bounded here
	maxCheckErrorBytes  = 512
)

// CheckOption configures one readiness check (see AddReadinessCheck).
type CheckOption func(*readinessCheck)

// CheckNonCritical marks a check whose failure does not take the service
// out of rotation: /readyz still answers 200, with status "degraded", and
// gRPC health stays SERVING. For dependencies the service can work without
// (a cache, a recommendations backend).
func CheckNonCritical() CheckOption { return func(c *readinessCheck) { c.critical = false } }

// CheckTimeout sets how long one run of the check may take (default 1s);
// past it the check counts as failed, "timed out", whether or not the
// function honours its context.
func CheckTimeout(d time.Duration) CheckOption {
	return func(c *readinessCheck) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// health is the one state machine and the readiness checks behind /readyz,
// /startupz and gRPC health.
type health struct {
	log   *slog.Logger
	scrub func(error) string
	ttl   time.Duration

	ctx    context.Context // the checks' base context; cancelled when stopped
	cancel context.CancelFunc

	mu      sync.Mutex
	state   lifeState
	manual  bool          // SetReady; true unless the service said otherwise
	changed chan struct{} // closed and replaced on every change of state or manual
	closing chan struct{} // closed when the servers are about to stop: Watch streams end
	checks  map[string]*readinessCheck
	dropped int // checks refused past maxChecks

	stateGauge *prometheus.GaugeVec
	status     *prometheus.GaugeVec
	duration   *prometheus.HistogramVec
}

func newHealth(log *slog.Logger, scrub func(error) string, ttl time.Duration) *health {
	if ttl <= 0 {
		ttl = defaultCheckTTL
	}
	h := &health{
		log:     log,
		scrub:   scrub,
		ttl:     ttl,
		manual:  true,
		changed: make(chan struct{}),
		closing: make(chan struct{}),
		checks:  map[string]*readinessCheck{},
		stateGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "observe_health_state",
			Help: "1 for the service's current lifecycle state (starting, ready, draining, stopped).",
		}, []string{"state"}),
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "observe_health_check_status",
			Help: "Result of the last run of a readiness check: 1 passed, 0 failed.",
		}, []string{"check"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "observe_health_check_duration_seconds",
			Help:    "How long readiness checks took (a timed-out run counts its timeout).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"check"}),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.setGauge()
	return h
}

func (h *health) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{h.stateGauge, h.status, h.duration} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (h *health) setGauge() {
	for i, n := range stateNames {
		v := 0.0
		if lifeState(i) == h.state {
			v = 1
		}
		h.stateGauge.WithLabelValues(n).Set(v)
	}
}

// setState moves the lifecycle forward (never back) and logs the change once.
func (h *health) setState(to lifeState) bool { return h.setStateLogged(to, slog.LevelInfo) }

func (h *health) setStateLogged(to lifeState, level slog.Level) bool {
	h.mu.Lock()
	from := h.state
	if to <= from {
		h.mu.Unlock()
		return false
	}
	h.state = to
	h.setGauge()
	h.broadcastLocked()
	if to == stateStopped {
		h.cancel()
	}
	h.mu.Unlock()
	h.log.Log(context.Background(), level, "health state changed", slog.String("from", from.String()), slog.String("to", to.String()))
	return true
}

func (h *health) setManual(ready bool) {
	h.mu.Lock()
	if h.manual == ready {
		h.mu.Unlock()
		return
	}
	h.manual = ready
	h.broadcastLocked()
	h.mu.Unlock()
	h.log.Info("readiness set by the service", slog.Bool("ready", ready))
}

func (h *health) broadcastLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// snapshot returns the state, the manual flag and a channel closed at the
// next change of either.
func (h *health) snapshot() (lifeState, bool, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state, h.manual, h.changed
}

// closeWatchers ends every gRPC Watch stream, so GracefulStop does not wait
// on them.
func (h *health) closeWatchers() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.closing:
	default:
		close(h.closing)
	}
}

func (h *health) add(name string, fn func(context.Context) error, opts []CheckOption) {
	c := &readinessCheck{h: h, name: name, fn: fn, critical: true, timeout: defaultCheckTimeout}
	for _, opt := range opts {
		if opt != nil {
			opt(c)
		}
	}
	h.mu.Lock()
	if _, replace := h.checks[name]; !replace && len(h.checks) >= maxChecks {
		h.dropped++
		n := h.dropped
		h.mu.Unlock()
		h.log.Error("readiness check not added: too many checks", slog.String("check", name),
			slog.Int("limit", maxChecks), slog.Int("refused", n))
		return
	}
	h.checks[name] = c
	h.mu.Unlock()
}

func (h *health) current(c *readinessCheck) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.checks[c.name] == c
}

// readinessCheck is one readiness check with its cached result. At most one run of
// its function is under way at any time, and a finished result is reused
// for the TTL: a probe storm runs the check once.
type readinessCheck struct {
	h        *health
	name     string
	fn       func(context.Context) error
	critical bool
	timeout  time.Duration

	mu       sync.Mutex
	res      checkOutcome
	have     bool
	inflight chan struct{} // closed when the current run has a result (its own, or the timeout)
	running  bool          // the function is still executing (it may outlive its timeout)
	failing  bool          // for logging changes once
}

type checkOutcome struct {
	err      string // "" when the check passed
	duration time.Duration
	at       time.Time
}

// acquire returns a fresh cached result, or the channel of the run that
// will produce one (starting it if needed).
func (c *readinessCheck) acquire() (checkOutcome, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.have && time.Since(c.res.at) < c.h.ttl {
		return c.res, nil
	}
	if c.inflight == nil {
		if c.running {
			// The last run outlived its timeout and is still going: do not
			// pile up another goroutine behind it.
			c.finishLocked(fmt.Sprintf("timed out after %v (still running)", c.timeout), c.timeout)
			return c.res, nil
		}
		c.start()
	}
	return checkOutcome{}, c.inflight
}

func (c *readinessCheck) start() {
	ch := make(chan struct{})
	c.inflight = ch
	c.running = true
	began := time.Now()
	ctx, cancel := context.WithTimeout(c.h.ctx, c.timeout)
	finish := func(msg string, fromRun bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if fromRun {
			c.running = false
		}
		if c.inflight == ch {
			c.finishLocked(msg, time.Since(began))
		}
	}
	timer := time.AfterFunc(c.timeout, func() { finish(fmt.Sprintf("timed out after %v", c.timeout), false) })
	go func() {
		err := runCheck(ctx, c.fn)
		timer.Stop()
		cancel()
		msg := ""
		if err != nil {
			msg = c.h.scrub(err)
			if len(msg) > maxCheckErrorBytes {
				msg = msg[:maxCheckErrorBytes] + "…"
			}
			if msg == "" {
				msg = "failed"
			}
		}
		finish(msg, true)
	}()
}

// finishLocked records a result, wakes the probes waiting on it and logs a
// change of outcome once.
func (c *readinessCheck) finishLocked(msg string, d time.Duration) {
	c.res = checkOutcome{err: msg, duration: d, at: time.Now()}
	c.have = true
	if c.inflight != nil {
		close(c.inflight)
		c.inflight = nil
	}
	if !c.h.current(c) {
		return // replaced by a check of the same name
	}
	v := 1.0
	if msg != "" {
		v = 0
	}
	c.h.status.WithLabelValues(c.name).Set(v)
	c.h.duration.WithLabelValues(c.name).Observe(d.Seconds())
	if failing := msg != ""; failing != c.failing {
		c.failing = failing
		if failing {
			c.h.log.Warn("readiness check failing", slog.String("check", c.name), slog.Bool("critical", c.critical), slog.String("error", msg))
		} else {
			c.h.log.Info("readiness check passing again", slog.String("check", c.name))
		}
	}
}

func runCheck(ctx context.Context, check func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("check panicked: %v", r)
		}
	}()
	return check(ctx)
}

// checkReport is one check's line in a readiness report.
type checkReport struct {
	Name     string
	Critical bool
	Err      string
	Duration time.Duration
	At       time.Time // when the result was produced
}

// readiness is what /readyz and gRPC health answer from.
type readiness struct {
	state    lifeState
	manual   bool
	checks   []checkReport // sorted by name
	degraded bool          // a non-critical check failed
	failed   bool          // a critical check failed
}

func (r readiness) ok() bool { return r.state == stateReady && r.manual && !r.failed }

func (r readiness) status() string {
	switch {
	case r.state != stateReady:
		return r.state.String()
	case !r.manual || r.failed:
		return "not ready"
	case r.degraded:
		return "degraded"
	}
	return "ok"
}

// evaluate runs (or reuses) every check not excluded, concurrently. Checks
// run while starting and ready; draining and stopped need none.
func (h *health) evaluate(ctx context.Context, exclude map[string]bool) readiness {
	state, manual, _ := h.snapshot()
	r := readiness{state: state, manual: manual}
	if state > stateReady {
		return r
	}
	h.mu.Lock()
	checks := make([]*readinessCheck, 0, len(h.checks))
	for name, c := range h.checks {
		if !exclude[name] {
			checks = append(checks, c)
		}
	}
	h.mu.Unlock()
	sort.Slice(checks, func(i, j int) bool { return checks[i].name < checks[j].name })
	results := make([]checkOutcome, len(checks))
	waits := make([]<-chan struct{}, len(checks))
	for i, c := range checks { // start every run first, then wait: concurrent
		results[i], waits[i] = c.acquire()
	}
	for i, c := range checks {
		if waits[i] != nil {
			select {
			case <-waits[i]:
				c.mu.Lock()
				results[i] = c.res
				c.mu.Unlock()
			case <-ctx.Done():
				results[i] = checkOutcome{err: "probe gave up: " + ctx.Err().Error(), at: time.Now()}
			}
		}
		res := results[i]
		r.checks = append(r.checks, checkReport{Name: c.name, Critical: c.critical, Err: res.err, Duration: res.duration, At: res.at})
		if res.err != "" {
			if c.critical {
				r.failed = true
			} else {
				r.degraded = true
			}
		}
	}
	return r
}

// healthStatus is health as the rest of the package shows it (gRPC
// health, the status page): whether startup is over, whether the service
// is ready, and each check's last result, from the cache /readyz uses.
func (o *Observer) healthStatus(ctx context.Context) (started, ready bool, checks []checkReport) {
	r := o.health.evaluate(ctx, nil)
	return r.state != stateStarting, r.ok(), r.checks
}

// probeQuery is what a probe's query string asks for.
type probeQuery struct {
	verbose bool
	exclude map[string]bool
}

const maxProbeQuery = 4096

// parseProbeQuery reads the Kubernetes-style probe parameters: verbose
// (present, or true/false/1/0) and exclude (repeatable check names).
// Unknown parameters are ignored, as kube-apiserver does.
func parseProbeQuery(raw string) (probeQuery, error) {
	var q probeQuery
	if raw == "" {
		return q, nil
	}
	if len(raw) > maxProbeQuery {
		return q, fmt.Errorf("query string longer than %d bytes", maxProbeQuery)
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return q, fmt.Errorf("malformed query string: %v", err)
	}
	if vs, ok := vals["verbose"]; ok {
		switch v := strings.ToLower(vs[len(vs)-1]); v {
		case "", "1", "true":
			q.verbose = true
		case "0", "false":
		default:
			return q, fmt.Errorf("verbose=%q: accepted: no value, true, false, 1, 0", v)
		}
	}
	for _, name := range vals["exclude"] {
		if q.exclude == nil {
			q.exclude = map[string]bool{}
		}
		q.exclude[name] = true
	}
	return q, nil
}

// oneLine keeps a report line one line long.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// writeReadiness answers /readyz: 200 when ready (status "ok" or
// "degraded"), else 503; Kubernetes-style text with ?verbose, JSON
// otherwise.
func writeReadiness(w http.ResponseWriter, r readiness, verbose bool) {
	code := http.StatusOK
	if !r.ok() {
		code = http.StatusServiceUnavailable
	}
	if verbose {
		var b strings.Builder
		if r.state != stateReady {
			fmt.Fprintf(&b, "[-]lifecycle failed: %s\n", r.state)
		} else if !r.manual {
			b.WriteString("[-]lifecycle failed: not ready (set by the service)\n")
		} else {
			b.WriteString("[+]lifecycle ok\n")
		}
		for _, c := range r.checks {
			name := oneLine(c.Name)
			switch {
			case c.Err == "":
				fmt.Fprintf(&b, "[+]%s ok\n", name)
			case c.Critical:
				fmt.Fprintf(&b, "[-]%s failed: %s\n", name, oneLine(c.Err))
			default:
				fmt.Fprintf(&b, "[-]%s failed (non-critical): %s\n", name, oneLine(c.Err))
			}
		}
		switch {
		case code != http.StatusOK:
			b.WriteString("readyz check failed\n")
		case r.degraded:
			b.WriteString("readyz check passed (degraded)\n")
		default:
			b.WriteString("readyz check passed\n")
		}
		writeText(w, code, b.String())
		return
	}
	type checkJSON struct {
		Status   string  `json:"status"`
		Critical bool    `json:"critical"`
		Error    string  `json:"error,omitempty"`
		Seconds  float64 `json:"duration_seconds"`
	}
	body := map[string]any{"status": r.status(), "state": r.state.String()}
	if len(r.checks) > 0 {
		checks := make(map[string]checkJSON, len(r.checks))
		failed := map[string]string{}
		for _, c := range r.checks {
			st := "ok"
			if c.Err != "" {
				st = "failed"
				failed[c.Name] = c.Err
			}
			checks[c.Name] = checkJSON{Status: st, Critical: c.Critical, Error: c.Err, Seconds: c.Duration.Seconds()}
		}
		body["checks"] = checks
		if len(failed) > 0 {
			body["failed"] = failed
		}
	}
	writeJSON(w, code, body)
}

func writeText(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(s))
}

func (o *Observer) serveReadyz(w http.ResponseWriter, r *http.Request) {
	q, err := parseProbeQuery(r.URL.RawQuery)
	if err != nil {
		badRequest(w, "/readyz: "+err.Error())
		return
	}
	writeReadiness(w, o.health.evaluate(r.Context(), q.exclude), q.verbose)
}

// serveStartupz answers 503 while starting (before Init returns, or until
// MarkStarted with WithStartupGate), 200 after.
func (o *Observer) serveStartupz(w http.ResponseWriter, r *http.Request) {
	q, err := parseProbeQuery(r.URL.RawQuery)
	if err != nil {
		badRequest(w, "/startupz: "+err.Error())
		return
	}
	state, _, _ := o.health.snapshot()
	started := state != stateStarting
	switch {
	case q.verbose && started:
		writeText(w, http.StatusOK, "[+]started ok\nstartupz check passed\n")
	case q.verbose:
		writeText(w, http.StatusServiceUnavailable, "[-]started failed: starting\nstartupz check failed\n")
	case started:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	default:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
	}
}

// startHealth builds the state machine; Init calls it before the admin
// handler exists.
func (o *Observer) startHealth() error {
	log := slog.New(o.logHandler.WithName("observe.health"))
	o.health = newHealth(log, func(err error) string { return o.scrubError(err).Error() }, defaultCheckTTL)
	if o.metrics != nil {
		if err := o.health.register(o.metrics.Registry()); err != nil {
			return fmt.Errorf("observe: health metrics: %w", err)
		}
	}
	return nil
}

// initDone ends startup when Init returns, unless WithStartupGate holds it
// for MarkStarted.
func (o *Observer) initDone() {
	if o.cfg.health.startupGate {
		o.health.log.Info("startup held until MarkStarted (WithStartupGate)")
		return
	}
	// Init returning is the usual way to be ready: not worth a line at
	// INFO in every service's log (MarkStarted's is).
	o.health.setStateLogged(stateReady, slog.LevelDebug)
}

// WithStartupGate holds the service in the starting state after Init
// returns: /startupz and /readyz answer 503 and gRPC health NOT_SERVING
// until obs.MarkStarted(). For a service that warms caches or loads data
// before it takes traffic.
func WithStartupGate() Option { return func(c *config) { c.health.startupGate = true } }

// MarkStarted ends startup (see WithStartupGate): the service becomes
// ready. It is a no-op once started, and never undoes draining.
func (o *Observer) MarkStarted() { o.health.setState(stateReady) }

// AddReadinessCheck adds (or replaces, by name) a check run by /readyz and
// gRPC health. Checks run concurrently, each with a timeout (1s unless
// CheckTimeout says otherwise), and each result is reused for a second, so
// a storm of probes runs a check at most once a second. A check that
// fails, times out or panics fails readiness (503, NOT_SERVING) unless it
// is CheckNonCritical; its error, redacted, is in the report. Liveness
// never runs checks.
func (o *Observer) AddReadinessCheck(name string, check func(context.Context) error, opts ...CheckOption) {
	if check == nil {
		check = func(context.Context) error { return errors.New("nil check function") }
	}
	o.health.add(name, check, opts)
}

// SetReady takes the service out of rotation (false: /readyz 503, gRPC
// NOT_SERVING) or puts it back (true). It does not move the lifecycle:
// it cannot end startup (MarkStarted does) nor undo draining.
func (o *Observer) SetReady(ready bool) { o.health.setManual(ready) }
