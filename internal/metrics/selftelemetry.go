package metrics

import (
	"sync/atomic"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// SelfTelemetry tells observe's own health: the funcs are read at scrape
// time and exported under observe_. A nil func leaves its metric out. Every
// func must be safe for concurrent use and quick.
type SelfTelemetry struct {
	// SpansDropped counts spans dropped before export (queue full).
	SpansDropped func() uint64
	// LogsDropped counts log records dropped before export.
	LogsDropped func() uint64
	// ProfilesDropped counts profiles dropped before upload.
	ProfilesDropped func() uint64
	// ExportFailures counts failed exports by signal ("traces", "logs",
	// "profiles"). Failures of the OTLP metrics push are counted by this
	// package as signal "metrics".
	ExportFailures func() map[string]uint64
	// Redactions counts redactions by kind (the redaction policy's Counts).
	Redactions func() map[string]uint64
	// DebugTokenFailures counts refused X-Observe-Debug headers by reason
	// ("mismatch", "rate_limited").
	DebugTokenFailures func() map[string]uint64
}

// SetSelfTelemetry sets the funcs behind observe's self-telemetry metrics.
// observe.Init calls it; a later call replaces the earlier one.
func (m *Metrics) SetSelfTelemetry(st SelfTelemetry) { m.self.funcs.Store(&st) }

// maxSelfLabelValues bounds the label values of one self-telemetry metric
// (redaction kinds can be user-defined); the rest add up under _OTHER.
const maxSelfLabelValues = 64

type selfCollector struct {
	m     *Metrics
	funcs atomic.Pointer[SelfTelemetry]

	metricExportFailures atomic.Uint64
	pushing              atomic.Bool

	spansDropped, logsDropped, profilesDropped *prometheus.Desc
	exportFailures, redactions, debugFailures  *prometheus.Desc
	series, seriesLimit                        *prometheus.Desc
}

func newSelfCollector(m *Metrics) *selfCollector {
	cl := m.cfg.ConstLabels
	return &selfCollector{
		m:               m,
		spansDropped:    prometheus.NewDesc("observe_spans_dropped_total", "Spans dropped before export.", nil, cl),
		logsDropped:     prometheus.NewDesc("observe_logs_dropped_total", "Log records dropped before export.", nil, cl),
		profilesDropped: prometheus.NewDesc("observe_profiles_dropped_total", "Profiles dropped before upload.", nil, cl),
		exportFailures:  prometheus.NewDesc("observe_export_failures_total", "Failed exports, by signal.", []string{"signal"}, cl),
		redactions:      prometheus.NewDesc("observe_redactions_total", "Values redacted, by kind.", []string{"kind"}, cl),
		debugFailures:   prometheus.NewDesc("observe_debug_token_failures_total", "X-Observe-Debug headers refused, by reason (mismatch, rate_limited).", []string{"reason"}, cl),
		series:          prometheus.NewDesc("observe_metric_series", "Series held by each observe metric (overflow series included).", []string{"metric"}, cl),
		seriesLimit:     prometheus.NewDesc("observe_metric_series_limit", "Series limit per observe metric, past which label values are recorded as _OTHER.", nil, cl),
	}
}

func (c *selfCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.spansDropped, c.logsDropped, c.profilesDropped, c.exportFailures, c.redactions, c.debugFailures, c.series, c.seriesLimit} {
		ch <- d
	}
}

func (c *selfCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	for _, s := range []struct {
		name string
		n    int
	}{
		{HTTPServerDuration, m.HTTPServer.Series()},
		{httpClientDuration, m.HTTPClient.seriesCount()},
		{"rpc_server_call_duration_seconds", m.RPCServer.Series()},
		{"rpc_client_call_duration_seconds", m.RPCClient.Series()},
	} {
		ch <- prometheus.MustNewConstMetric(c.series, prometheus.GaugeValue, float64(s.n), s.name)
	}
	ch <- prometheus.MustNewConstMetric(c.seriesLimit, prometheus.GaugeValue, float64(m.cfg.SeriesLimit))

	st := c.funcs.Load()
	if st == nil {
		st = &SelfTelemetry{}
	}
	counter := func(d *prometheus.Desc, f func() uint64) {
		if f != nil {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(f()))
		}
	}
	counter(c.spansDropped, st.SpansDropped)
	counter(c.logsDropped, st.LogsDropped)
	counter(c.profilesDropped, st.ProfilesDropped)

	var failures map[string]uint64
	if st.ExportFailures != nil {
		failures = st.ExportFailures()
	}
	if c.pushing.Load() {
		f := make(map[string]uint64, len(failures)+1)
		for k, v := range failures {
			f[k] = v
		}
		f["metrics"] += c.metricExportFailures.Load()
		failures = f
	}
	labelledCounters(ch, c.exportFailures, failures)
	if st.Redactions != nil {
		labelledCounters(ch, c.redactions, st.Redactions())
	}
	if st.DebugTokenFailures != nil {
		labelledCounters(ch, c.debugFailures, st.DebugTokenFailures())
	}
}

// labelledCounters emits one counter per key of counts, at most
// maxSelfLabelValues of them; keys that cannot be label values and keys
// past the bound add up under _OTHER.
func labelledCounters(ch chan<- prometheus.Metric, d *prometheus.Desc, counts map[string]uint64) {
	if len(counts) == 0 {
		return
	}
	var other uint64
	hasOther := false
	n := 0
	for k, v := range counts {
		if k == Other || len(k) > 64 || !utf8.ValidString(k) || n >= maxSelfLabelValues {
			other += v
			hasOther = true
			continue
		}
		m, err := prometheus.NewConstMetric(d, prometheus.CounterValue, float64(v), k)
		if err != nil {
			other += v
			hasOther = true
			continue
		}
		n++
		ch <- m
	}
	if hasOther {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(other), Other)
	}
}
