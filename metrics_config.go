package observe

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/observekit/observe/internal/envconfig"
	"github.com/observekit/observe/internal/metrics"
	"github.com/observekit/observe/internal/wiring"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/sdk/resource"
)

// metricsSettings is the metrics part of config.
type metricsSettings struct {
	otlp             metrics.OTLPConfig // the push, when OTEL_METRICS_EXPORTER includes otlp
	exportInterval   time.Duration      // OTEL_METRIC_EXPORT_INTERVAL
	exportTimeout    time.Duration      // OTEL_METRIC_EXPORT_TIMEOUT
	nativeHistograms bool               // OBSERVE_NATIVE_HISTOGRAMS
	seriesLimit      int                // OBSERVE_METRIC_SERIES_LIMIT
	durationBuckets  []float64          // WithDurationBuckets
}

// WithNativeHistograms adds native (sparse) histograms to observe's
// histograms, alongside the classic buckets. It overrides
// OBSERVE_NATIVE_HISTOGRAMS.
func WithNativeHistograms(on bool) Option {
	return func(c *config) { c.metrics.nativeHistograms = on }
}

// WithMetricSeriesLimit sets the per-metric series cap (default 1000), past
// which new label combinations are recorded as _OTHER and counted in
// observe_metric_overflow_total. It overrides OBSERVE_METRIC_SERIES_LIMIT.
func WithMetricSeriesLimit(n int) Option {
	return func(c *config) { c.metrics.seriesLimit = n }
}

// WithDurationBuckets replaces the bucket boundaries (seconds) of the
// duration histograms; the default is the OpenTelemetry semantic-convention
// set, metrics.DefaultDurationBuckets.
func WithDurationBuckets(bounds ...float64) Option {
	return func(c *config) { c.metrics.durationBuckets = append([]float64(nil), bounds...) }
}

// loadMetricsEnv reads the metrics variables: OTEL_METRICS_EXPORTER, the
// OTLP push section (envconfig.Env.OTLP; certificate files read when the
// push is on), the export interval and timeout, and observe's own.
func loadMetricsEnv(env *envconfig.Env, c *config) {
	if v := env.Get("OTEL_METRICS_EXPORTER"); v != "" {
		c.metricsExporter = nil
		for _, e := range strings.Split(v, ",") {
			e = strings.TrimSpace(e)
			switch e {
			case "prometheus", "otlp", "none":
				c.metricsExporter = append(c.metricsExporter, e)
			case "":
			default:
				env.Bad("OTEL_METRICS_EXPORTER", v, "prometheus, otlp, none", fmt.Errorf("unknown exporter %q", e))
			}
		}
	}
	ms := &c.metrics
	ms.otlp = env.OTLP(envconfig.Metrics, c.metricsPush())
	env.Millis("OTEL_METRIC_EXPORT_INTERVAL", &ms.exportInterval)
	env.Millis("OTEL_METRIC_EXPORT_TIMEOUT", &ms.exportTimeout)
	env.Bool("OBSERVE_NATIVE_HISTOGRAMS", &ms.nativeHistograms)
	env.PositiveInt("OBSERVE_METRIC_SERIES_LIMIT", &ms.seriesLimit)
}

// checkMetrics validates the options' metrics settings.
func (c *config) checkMetrics() error {
	var errs []error
	if c.metrics.seriesLimit < 0 {
		errs = append(errs, &ConfigError{Variable: "WithMetricSeriesLimit", Value: strconv.Itoa(c.metrics.seriesLimit), Accepted: "a positive integer"})
	}
	b := c.metrics.durationBuckets
	for i := 1; i < len(b); i++ {
		if !(b[i] > b[i-1]) {
			errs = append(errs, &ConfigError{Variable: "WithDurationBuckets", Value: fmt.Sprint(b), Accepted: "bucket boundaries in strictly increasing order"})
			break
		}
	}
	return errors.Join(errs...)
}

func (c *config) metricsPush() bool {
	for _, e := range c.metricsExporter {
		if e == "otlp" {
			return true
		}
	}
	return false
}

// startMetrics builds the registry and instruments, installs the
// OpenTelemetry meter provider as the global one (its metrics appear on the
// same /metrics; with OTEL_METRICS_EXPORTER including otlp everything is
// pushed as well). Init wires the self-telemetry once every signal runs.
func (o *Observer) startMetrics(ctx context.Context, res *resource.Resource) error {
	cfg := o.cfg
	m, err := metrics.New(metrics.Config{
		DurationBuckets:  cfg.metrics.durationBuckets,
		SeriesLimit:      cfg.metrics.seriesLimit,
		NativeHistograms: cfg.metrics.nativeHistograms,
		Resource:         res,
	})
	if err != nil {
		return fmt.Errorf("observe: metrics: %w", err)
	}
	mc := metrics.MeterConfig{Resource: res, Interval: cfg.metrics.exportInterval, Timeout: cfg.metrics.exportTimeout}
	if cfg.metricsPush() {
		otlp := cfg.metrics.otlp
		mc.OTLP = &otlp
	}
	mp, err := metrics.NewMeterProvider(ctx, m, mc)
	if err != nil {
		return fmt.Errorf("observe: metrics: %w", err)
	}
	o.metrics, o.meters = m, mp
	wiring.Metrics.Store(m)
	otel.SetMeterProvider(mp.MeterProvider())
	return nil
}

// selfTelemetry gathers the health counters of every signal for
// observe_*_total, read at scrape time.
func (o *Observer) selfTelemetry() metrics.SelfTelemetry {
	var st metrics.SelfTelemetry
	failures := map[string]func() uint64{}
	if t := o.tracing; t != nil {
		st.SpansDropped = t.DroppedSpans
		failures["traces"] = t.ExportFailures
	}
	if h := o.logHandler; h != nil {
		st.LogsDropped = h.DroppedRecords
		failures["logs"] = h.ExportFailures
		if o.cfg.debugToken != "" {
			st.DebugTokenFailures = func() map[string]uint64 {
				mismatched, limited := h.DebugTokenFailures()
				return map[string]uint64{"mismatch": mismatched, "rate_limited": limited}
			}
		}
	}
	if p := o.profiler; p != nil {
		st.ProfilesDropped = p.DroppedProfiles
		failures["profiles"] = p.ExportFailures
	}
	if r := o.redactor; r != nil {
		st.Redactions = r.Counts
	}
	if len(failures) > 0 {
		st.ExportFailures = func() map[string]uint64 {
			out := make(map[string]uint64, len(failures))
			for signal, f := range failures {
				out[signal] = f()
			}
			return out
		}
	}
	return st
}
