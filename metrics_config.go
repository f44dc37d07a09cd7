package observe

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/observekit/observe/metrics"
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

// loadMetricsEnv reads the metrics variables: the OTLP push settings (the
// general OTEL_EXPORTER_OTLP_* ones, overridden by the _METRICS_ ones), the
// export interval and observe's own.
func loadMetricsEnv(getenv func(string) string, c *config, bad func(variable, value, accepted string, err error), secret func(variable, accepted string, err error)) {
	ms := &c.metrics
	ms.otlp = metrics.OTLPConfig{Protocol: "http/protobuf", Timeout: 10 * time.Second}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"} {
		switch v := strings.TrimSpace(getenv(name)); v {
		case "":
		case "grpc", "http/protobuf":
			ms.otlp.Protocol = v
		default:
			if name != "OTEL_EXPORTER_OTLP_PROTOCOL" { // the general one is reported with the traces
				bad(name, v, "grpc, http/protobuf", nil)
			}
		}
	}
	if v := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")); v != "" {
		if err := checkEndpoint(v); err != nil {
			bad("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", v, "an absolute URL such as http://collector:4318/v1/metrics", err)
		}
		ms.otlp.Endpoint = v
	} else if v := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")); v != "" && checkEndpoint(v) == nil {
		ms.otlp.Endpoint = v
		if ms.otlp.Protocol == "http/protobuf" {
			ms.otlp.Endpoint = strings.TrimSuffix(v, "/") + "/v1/metrics"
		}
	}
	if v := getenv("OTEL_EXPORTER_OTLP_HEADERS"); strings.TrimSpace(v) != "" {
		if h, err := parseHeaders(v); err == nil { // a bad one is reported with the traces
			ms.otlp.Headers = h
		}
	}
	if v := getenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS"); strings.TrimSpace(v) != "" {
		h, err := parseHeaders(v)
		if err != nil {
			secret("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "comma-separated key=value pairs, values percent-encoded", err)
		}
		if ms.otlp.Headers == nil {
			ms.otlp.Headers = map[string]string{}
		}
		for k, val := range h {
			ms.otlp.Headers[k] = val
		}
	}
	ms.otlp.Endpoint, ms.otlp.Headers = endpointCredentials(ms.otlp.Endpoint, ms.otlp.Headers)
	for _, name := range []string{"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_METRICS_INSECURE"} {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil && name != "OTEL_EXPORTER_OTLP_INSECURE" {
				bad(name, v, "true, false", nil)
			}
			ms.otlp.Insecure = b
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"} {
		if d, ok := positiveMillis(getenv, name, bad, name != "OTEL_EXPORTER_OTLP_TIMEOUT"); ok {
			ms.otlp.Timeout = d
		}
	}
	if d, ok := positiveMillis(getenv, "OTEL_METRIC_EXPORT_INTERVAL", bad, true); ok {
		ms.exportInterval = d
	}
	if d, ok := positiveMillis(getenv, "OTEL_METRIC_EXPORT_TIMEOUT", bad, true); ok {
		ms.exportTimeout = d
	}
	if v := strings.TrimSpace(getenv("OBSERVE_NATIVE_HISTOGRAMS")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("OBSERVE_NATIVE_HISTOGRAMS", v, "true, false", nil)
		}
		ms.nativeHistograms = b
	}
	if v := strings.TrimSpace(getenv("OBSERVE_METRIC_SERIES_LIMIT")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			bad("OBSERVE_METRIC_SERIES_LIMIT", v, "a positive integer", nil)
		}
		ms.seriesLimit = n
	}
}

// positiveMillis reads a variable holding a positive number of
// milliseconds; report says whether a malformed value is this reader's to
// report.
func positiveMillis(getenv func(string) string, name string, bad func(string, string, string, error), report bool) (time.Duration, bool) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return 0, false
	}
	ms, err := strconv.Atoi(v)
	if err != nil || ms <= 0 {
		if report {
			bad(name, v, "a positive number of milliseconds", nil)
		}
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
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
	metrics.SetCurrent(m)
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
