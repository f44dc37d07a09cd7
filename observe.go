// Package observe wires the five signals of a Go service with one call:
// RED metrics on a Prometheus /metrics endpoint, W3C trace propagation with
// spans exported over OTLP, structured JSON logs carrying trace_id/span_id
// with secrets redacted, log levels changeable at runtime, and continuous
// profiling.
//
//	obs, err := observe.Init(ctx, observe.WithServiceName("checkout"))
//	if err != nil {
//		log.Fatal(err) // only for invalid configuration
//	}
//	defer obs.Shutdown(context.Background())
//	http.ListenAndServe(":8080", middleware.HTTP(mux))
//
// Configuration comes from options, then environment variables (the
// OpenTelemetry ones and OBSERVE_*), then defaults; see the README.
package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/observekit/observe/internal/cpuring"
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/internal/logging"
	"github.com/observekit/observe/internal/metrics"
	"github.com/observekit/observe/internal/profiling"
	"github.com/observekit/observe/internal/redsample"
	"github.com/observekit/observe/internal/tracing"
	"github.com/observekit/observe/internal/wiring"
	"github.com/observekit/observe/redact"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
)

// instanceLink is embedded in Observer under this unexported name, so the
// Observer satisfies instance.Source (middleware.WithObserver, tests)
// without a public method.
type instanceLink = instance.Link

// Observer is what Init returns: it owns every signal and the admin
// endpoints until Shutdown.
type Observer struct {
	instanceLink // what our own packages and tests reach (internal/instance); bound at the end of start

	cfg      *config
	resource *resource.Resource

	logHandler   *logging.Handler
	logExport    *logging.Provider // OTLP export of log records; nil when off
	redactor     *redact.Policy    // the one redaction policy (logs, spans, headers); built by startLogs
	levels       *logging.LevelController
	logger       *slog.Logger
	tracing      *tracing.Provider
	metrics      *metrics.Metrics
	unserved     *prometheus.Registry // Registerer's when metrics are off
	unservedOnce sync.Once
	meters       *metrics.MeterProvider // the global OTel meter provider
	profiler     *profiling.Profiler
	red          *redsample.Sampler // per-route RED history from the registry; nil when metrics are off
	hooks        *hookList          // OnAnomaly's (anomaly.go)
	anomaly      *anomalyWatch      // nil when anomaly detection is off

	// Recent CPU profiles for the profile of a trace (status_profile.go);
	// nil when span↔profile links are off. The collector is nil while
	// the Pyroscope push feeds the ring.
	cpuProfiles  *cpuring.Ring
	cpuCollector *cpuring.Collector

	admin       http.Handler
	status      *statusState      // the status page (status.go)
	statusAuth  *statusAuth       // its sign-in and CSRF keys
	statusLines *logging.LineRing // recent log lines by trace_id; nil when tracing is off
	adminServer *http.Server
	adminLn     net.Listener
	adminDone   chan struct{}

	health  *health // the lifecycle and readiness checks (health.go)
	servers servers // what Shutdown drains (drain.go)

	prevLogger *slog.Logger
	prevProp   propagation.TextMapPropagator

	shutdownStarted atomic.Bool // the first Shutdown runs stop; the others wait for it, by their own deadlines
	shutdownDone    chan struct{}
	shutdownErr     error
}

// Init reads the configuration, starts every signal and the admin listener,
// and installs the globals: slog.Default(), otel.GetTracerProvider(),
// otel.GetTextMapPropagator(). It returns an error only for invalid
// configuration (a *ConfigError naming the variable, joined when several are
// wrong) or an admin address that cannot be bound; it never waits on the
// network, so an unreachable backend is not an error.
func Init(ctx context.Context, opts ...Option) (*Observer, error) {
	cfg, err := loadConfig(os.Getenv, opts)
	if err != nil {
		return nil, err
	}
	return start(ctx, cfg)
}

func start(ctx context.Context, cfg *config) (_ *Observer, err error) {
	o := &Observer{cfg: cfg, shutdownDone: make(chan struct{}), hooks: &hookList{}}
	defer func() {
		if err != nil {
			// Undo what was started; nothing may be left running.
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = o.stop(sctx)
		}
	}()

	o.resource, err = buildResource(ctx, cfg)
	if err != nil {
		return nil, err
	}

	// Logs first, so everything after can log.
	if err := o.startLogs(ctx); err != nil {
		return nil, err
	}
	o.reportOTelErrors() // the SDK's own errors: rate-limited WARN lines (errorhandler.go)

	prop, err := tracing.NewPropagator(cfg.propagators)
	if err != nil {
		return nil, &ConfigError{Variable: "OTEL_PROPAGATORS", Value: fmt.Sprint(cfg.propagators), Err: err}
	}
	o.prevProp = otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(prop)

	if !cfg.sdkDisabled {
		sampler, err := tracing.NewSampler(cfg.samplerName, cfg.samplerArg)
		if err != nil && cfg.tail == nil {
			return nil, &ConfigError{Variable: "OTEL_TRACES_SAMPLER", Value: cfg.samplerName, Accepted: tracing.SamplerNames, Err: err}
		}
		o.tracing, err = tracing.New(ctx, tracing.Config{
			Resource:     o.resource,
			Sampler:      sampler,
			Tail:         cfg.tail,
			Exporter:     cfg.tracesExporter,
			SpanExporter: cfg.spanExporter,
			StoreSize:    cfg.spanStoreSize,
			Batch:        cfg.tracing.batch,
			Redactor:     spanRedactor(o.redactor),
			OTLP:         cfg.tracing.otlp,
		})
		if err != nil {
			return nil, fmt.Errorf("observe: tracing: %w", err)
		}
		var tp trace.TracerProvider = o.tracing.TracerProvider()
		if cfg.profileLinksOn() {
			tp = o.tracing.WrapTracers(profiling.LinkSpans)
		}
		otel.SetTracerProvider(tp)
		wiring.Tracing.Store(o.tracing)

		if !cfg.metricsOff() {
			if err := o.startMetrics(ctx, o.resource); err != nil {
				return nil, err
			}
		}

		o.cpuProfiles = o.newProfileRing() // before the profiler, which may feed it
		o.profiler, err = profiling.Start(o.profilingConfig())
		if err != nil {
			return nil, fmt.Errorf("observe: %w", err)
		}
		if err := o.startTraceProfiles(); err != nil {
			return nil, err
		}
	}

	if err := o.startHealth(); err != nil {
		return nil, err
	}
	o.admin = o.newAdminHandler()
	if cfg.adminAddr != "" {
		ln, err := net.Listen("tcp", cfg.adminAddr)
		if err != nil {
			return nil, &ConfigError{Variable: "OBSERVE_ADMIN_ADDR", Value: cfg.adminAddr, Accepted: `a free host:port, or "off"`, Err: err}
		}
		o.adminLn = ln
		o.adminServer = &http.Server{
			Handler:           o.admin,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			// pprof's CPU profile and trace endpoints stream for their
			// duration: no write timeout, the handlers bound themselves.
			IdleTimeout: 2 * time.Minute,
			ErrorLog:    slog.NewLogLogger(o.logHandler.WithName("observe.admin"), slog.LevelWarn),
		}
		o.adminDone = make(chan struct{})
		go func() {
			defer close(o.adminDone)
			_ = o.adminServer.Serve(ln)
		}()
	}
	if o.metrics != nil {
		// The status page and the anomaly detector read per-route RED
		// figures from here, sampled off the request path.
		o.red = redsample.New(redsample.Config{Gatherer: o.metrics.Registry()})
		o.red.Start()
		o.startAnomaly() // on the RED sampler; anomaly_sample.go
		o.metrics.SetSelfTelemetry(o.selfTelemetry())
		if t := o.tracing.Tail(); t != nil {
			// Exemplars only for kept traces; see tracing.Kept.
			metrics.SetExemplarFilter(tracing.Kept)
			if err := o.metrics.RegisterTailSampling(t); err != nil {
				return nil, fmt.Errorf("observe: metrics: %w", err)
			}
		}
	}
	instance.Bind(&o.instanceLink, &instance.Set{Tracing: o.tracing, Metrics: o.metrics, Levels: o.levels, Profiler: o.profiler})
	o.initDone()
	return o, nil
}

func (c *config) metricsOff() bool {
	for _, e := range c.metricsExporter {
		if e == "none" {
			return true
		}
	}
	return false
}

// Shutdown flushes every signal in parallel and stops the admin listener and
// every background goroutine, returning by ctx's deadline. It is idempotent
// and safe to call concurrently; later calls return the first call's result.
func (o *Observer) Shutdown(ctx context.Context) error {
	if o == nil {
		return nil
	}
	// Not a sync.Once: Once.Do would hold every other caller until the
	// first is done, past their own deadlines.
	if o.shutdownStarted.CompareAndSwap(false, true) {
		o.shutdownErr = o.stop(ctx)
		close(o.shutdownDone)
		return o.shutdownErr
	}
	select {
	case <-o.shutdownDone:
		return o.shutdownErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (o *Observer) stop(ctx context.Context) error {
	errs := o.drain(ctx) // readiness off, drain delay, servers stopped (drain.go)
	if o.red != nil {
		o.red.Stop()
	}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("observe: shutdown %s: %w", name, err))
				mu.Unlock()
			}
		}()
	}
	if o.adminServer != nil {
		run("admin", func(ctx context.Context) error {
			err := o.adminServer.Shutdown(ctx)
			if err != nil {
				_ = o.adminServer.Close()
			}
			<-o.adminDone
			return err
		})
	}
	if o.tracing != nil {
		run("tracing", o.tracing.Shutdown)
	}
	if o.profiler != nil {
		run("profiling", o.profiler.Stop)
	}
	if o.cpuCollector != nil {
		run("cpu profiles", o.cpuCollector.Stop)
	}
	if o.logExport != nil {
		run("logs", o.stopLogs)
	}
	if o.anomaly != nil {
		run("anomaly", o.anomaly.stop)
	}
	if o.meters != nil {
		run("metrics", o.meters.Shutdown)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		errs = append(errs, fmt.Errorf("observe: shutdown: %w", ctx.Err()))
		mu.Unlock()
	}
	if o.levels != nil {
		o.levels.Close()
	}
	// Last, so what the other signals logged while stopping is written too;
	// lines logged after this are written one by one.
	if err := o.closeLogLines(ctx); err != nil {
		mu.Lock()
		errs = append(errs, fmt.Errorf("observe: shutdown logs: %w", err))
		mu.Unlock()
	}
	// Detach the globals that point at us.
	if o.tracing != nil && wiring.Tracing.Load() == any(o.tracing) {
		wiring.Tracing.Store(nil)
	}
	if o.metrics != nil && wiring.Metrics.Load() == any(o.metrics) {
		wiring.Metrics.Store(nil)
	}
	if o.logHandler != nil && wiring.LogRoot.Load() == any(o.logHandler) {
		wiring.LogRoot.Store(nil)
	}
	if o.prevLogger != nil && slog.Default() == o.logger {
		slog.SetDefault(o.prevLogger)
	}
	if o.prevProp != nil {
		otel.SetTextMapPropagator(o.prevProp)
	}
	mu.Lock()
	defer mu.Unlock()
	return o.scrubError(errors.Join(errs...))
}

// Logger returns the observe logger (also slog.Default() after Init).
func (o *Observer) Logger() *slog.Logger { return o.logger }

// Tracer returns a tracer for the caller's own spans (scope name
// instrumentation, or observe's when empty). It is a no-op tracer when
// tracing is disabled.
func (o *Observer) Tracer(instrumentation string) trace.Tracer {
	if instrumentation == "" {
		instrumentation = tracing.InstrumentationName
	}
	return otel.GetTracerProvider().Tracer(instrumentation)
}

// Registerer is where your own Prometheus collectors go: they are served on
// the admin /metrics with observe's (and pushed with them when
// OTEL_METRICS_EXPORTER includes otlp). With metrics off
// (OTEL_METRICS_EXPORTER=none, OTEL_SDK_DISABLED=true) it is a registry that
// nothing serves, so registering still succeeds.
func (o *Observer) Registerer() prometheus.Registerer {
	if o.metrics == nil {
		o.unservedOnce.Do(func() { o.unserved = prometheus.NewRegistry() })
		return o.unserved
	}
	return o.metrics.Registry()
}

// Resource returns the OpenTelemetry resource describing this service.
func (o *Observer) Resource() *resource.Resource { return o.resource }

// ServiceName returns the resolved service.name.
func (o *Observer) ServiceName() string { return o.cfg.serviceName }

// AdminAddr returns the admin listener's address ("" when off), useful with
// OBSERVE_ADMIN_ADDR=127.0.0.1:0.
func (o *Observer) AdminAddr() string {
	if o.adminLn == nil {
		return ""
	}
	return o.adminLn.Addr().String()
}
