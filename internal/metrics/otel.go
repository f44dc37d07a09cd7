package metrics

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/observekit/observe/internal/otlpexport"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/otlptranslator"
	promproducer "go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
)

// instrumentationName is the scope of observe's instruments when they are
// pushed over OTLP.
const instrumentationName = "github.com/observekit/observe/metrics"

// MeterConfig configures NewMeterProvider.
type MeterConfig struct {
	// Resource describes the service (the OTLP resource).
	Resource *resource.Resource
	// OTLP, when set, pushes every metric on the registry (observe's under
	// their semantic-convention names) and every metric recorded through the
	// OpenTelemetry API over OTLP.
	OTLP *OTLPConfig
	// Exporter, when set, is used for the push instead of OTLP (tests,
	// custom backends).
	Exporter sdkmetric.Exporter
	// Interval between pushes (default 60s, OTEL_METRIC_EXPORT_INTERVAL).
	Interval time.Duration
	// Timeout of one push (default 30s, OTEL_METRIC_EXPORT_TIMEOUT).
	Timeout time.Duration
}

// OTLPConfig is the resolved OTLP exporter configuration (endpoint,
// protocol, headers, timeout, TLS, compression), the same for every signal.
type OTLPConfig = otlpexport.Config

// MeterProvider is the OpenTelemetry SDK meter provider observe installs as
// the global one: what user code records through otel.Meter(...) appears on
// the same /metrics as observe's instruments, and with OTLP configured
// everything is pushed as well.
type MeterProvider struct {
	mp       *sdkmetric.MeterProvider
	m        *Metrics
	pushing  bool
	once     sync.Once
	shutdown error
}

// NewMeterProvider builds the meter provider of m. It never waits on the
// network: OTLP exporters connect on the first push. One Metrics has one
// live MeterProvider: a second one replaces the first on /metrics.
func NewMeterProvider(ctx context.Context, m *Metrics, cfg MeterConfig) (*MeterProvider, error) {
	if m == nil {
		return nil, errors.New("metrics: NewMeterProvider needs a *Metrics")
	}
	otelReg := prometheus.NewRegistry()
	pull, err := otelprom.New(
		otelprom.WithRegisterer(otelReg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		// target_info is observe's own (from the same resource), always there.
		otelprom.WithoutTargetInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("metrics: OpenTelemetry Prometheus exporter: %w", err)
	}
	opts := []sdkmetric.Option{sdkmetric.WithReader(pull)}
	if cfg.Resource != nil {
		opts = append(opts, sdkmetric.WithResource(cfg.Resource))
	}
	exp := cfg.Exporter
	if exp == nil && cfg.OTLP != nil {
		if exp, err = otlpexport.Metrics(ctx, *cfg.OTLP); err != nil {
			return nil, err
		}
	}
	p := &MeterProvider{m: m}
	if exp != nil {
		interval, timeout := cfg.Interval, cfg.Timeout
		if interval <= 0 {
			interval = 60 * time.Second
		}
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		exp = &countingExporter{Exporter: exp, failures: &m.self.metricExportFailures}
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp,
			sdkmetric.WithInterval(interval),
			sdkmetric.WithTimeout(timeout),
			sdkmetric.WithProducer(&semconvProducer{next: promproducer.NewMetricProducer(promproducer.WithGatherer(m.reg))}),
		)))
		p.pushing = true
		m.self.pushing.Store(true)
	}
	p.mp = sdkmetric.NewMeterProvider(opts...)
	m.otel.Store(otelReg)
	return p, nil
}

// MeterProvider returns the SDK provider, for otel.SetMeterProvider.
func (p *MeterProvider) MeterProvider() *sdkmetric.MeterProvider { return p.mp }

// forceFlush pushes what is pending (nothing to do without OTLP).
func (p *MeterProvider) forceFlush(ctx context.Context) error { return p.mp.ForceFlush(ctx) }

// Shutdown pushes a last time (with OTLP) and stops the provider by ctx's
// deadline. It is idempotent; later calls return the first call's result.
func (p *MeterProvider) Shutdown(ctx context.Context) error {
	p.once.Do(func() {
		p.shutdown = p.mp.Shutdown(ctx)
		if p.pushing {
			p.m.self.pushing.Store(false)
		}
	})
	return p.shutdown
}

// otelGatherer serves the registry of the live MeterProvider's Prometheus
// exporter, swapped in by NewMeterProvider.
type otelGatherer struct {
	reg atomic.Pointer[prometheus.Registry]
}

func (g *otelGatherer) Store(r *prometheus.Registry) { g.reg.Store(r) }

func (g *otelGatherer) Gather() ([]*dto.MetricFamily, error) {
	r := g.reg.Load()
	if r == nil {
		return nil, nil
	}
	return r.Gather()
}

// countingExporter counts failed pushes for observe_export_failures_total.
type countingExporter struct {
	sdkmetric.Exporter
	failures *atomic.Uint64
}

func (e *countingExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	err := e.Exporter.Export(ctx, rm)
	if err != nil {
		e.failures.Add(1)
	}
	return err
}

// semconv names observe's metrics carry over OTLP, by Prometheus name.
var semconvMetrics = map[string]struct{ name, unit string }{
	HTTPServerDuration:                 {"http.server.request.duration", "s"},
	httpServerActive:                   {"http.server.active_requests", "{request}"},
	httpServerRequestSize:              {"http.server.request.body.size", "By"},
	httpServerResponseSize:             {"http.server.response.body.size", "By"},
	httpClientDuration:                 {"http.client.request.duration", "s"},
	httpClientRequestSize:              {"http.client.request.body.size", "By"},
	httpClientResponseSize:             {"http.client.response.body.size", "By"},
	"rpc_server_call_duration_seconds": {"rpc.server.call.duration", "s"},
	"rpc_client_call_duration_seconds": {"rpc.client.call.duration", "s"},
}

// semconv attribute keys, by Prometheus label name.
var semconvAttrs = map[string]attribute.Key{
	"http_request_method":       "http.request.method",
	"http_route":                "http.route",
	"http_response_status_code": "http.response.status_code",
	"server_address":            "server.address",
	"rpc_system_name":           "rpc.system.name",
	"rpc_method":                "rpc.method",
	"rpc_response_status_code":  "rpc.response.status_code",
}

// semconvProducer renames observe's instruments, as the contrib bridge
// reads them from the registry, to their OpenTelemetry semantic-convention
// names, units and attribute keys, under observe's own scope. Everything
// else on the registry passes as the bridge made it, but target_info, which
// OTLP carries as the resource.
type semconvProducer struct{ next sdkmetric.Producer }

func (p *semconvProducer) Produce(ctx context.Context) ([]metricdata.ScopeMetrics, error) {
	in, err := p.next.Produce(ctx)
	own := metricdata.ScopeMetrics{Scope: instrumentation.Scope{Name: instrumentationName}}
	out := make([]metricdata.ScopeMetrics, 0, len(in)+1)
	for _, sm := range in {
		rest := sm
		rest.Metrics = make([]metricdata.Metrics, 0, len(sm.Metrics))
		for _, m := range sm.Metrics {
			if m.Name == "target_info" {
				continue
			}
			fixExemplarIDs(m.Data)
			sc, ok := semconvMetrics[m.Name]
			if !ok {
				rest.Metrics = append(rest.Metrics, m)
				continue
			}
			m.Name, m.Unit = sc.name, sc.unit
			m.Data = semconvData(m.Data)
			own.Metrics = append(own.Metrics, m)
		}
		if len(rest.Metrics) > 0 {
			out = append(out, rest)
		}
	}
	if len(own.Metrics) > 0 {
		out = append(out, own)
	}
	return out, err
}

// fixExemplarIDs decodes the exemplar trace and span IDs the contrib bridge
// (v0.72) passes on as the bytes of their hex strings (32 and 16 bytes): OTLP
// wants the 16 and 8 raw bytes.
func fixExemplarIDs(d metricdata.Aggregation) {
	fix := func(ex []metricdata.Exemplar[float64]) {
		for i := range ex {
			ex[i].TraceID = unhex(ex[i].TraceID, 16)
			ex[i].SpanID = unhex(ex[i].SpanID, 8)
		}
	}
	switch v := d.(type) {
	case metricdata.Histogram[float64]:
		for i := range v.DataPoints {
			fix(v.DataPoints[i].Exemplars)
		}
	case metricdata.ExponentialHistogram[float64]:
		for i := range v.DataPoints {
			fix(v.DataPoints[i].Exemplars)
		}
	case metricdata.Sum[float64]:
		for i := range v.DataPoints {
			fix(v.DataPoints[i].Exemplars)
		}
	}
}

// unhex returns id decoded from hex when it is the hex form of n bytes, else
// id as it is (already raw, or unusable either way).
func unhex(id []byte, n int) []byte {
	if len(id) != 2*n {
		return id
	}
	out := make([]byte, n)
	if _, err := hex.Decode(out, id); err != nil {
		return id
	}
	return out
}

func semconvData(d metricdata.Aggregation) metricdata.Aggregation {
	switch v := d.(type) {
	case metricdata.Histogram[float64]:
		for i := range v.DataPoints {
			v.DataPoints[i].Attributes = semconvAttributes(v.DataPoints[i].Attributes)
		}
		return v
	case metricdata.ExponentialHistogram[float64]:
		for i := range v.DataPoints {
			v.DataPoints[i].Attributes = semconvAttributes(v.DataPoints[i].Attributes)
		}
		return v
	case metricdata.Gauge[float64]:
		// http.server.active_requests is an UpDownCounter.
		s := metricdata.Sum[float64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: false, DataPoints: v.DataPoints}
		for i := range s.DataPoints {
			s.DataPoints[i].Attributes = semconvAttributes(s.DataPoints[i].Attributes)
		}
		return s
	}
	return d
}

// semconvAttributes renames the attribute keys; a numeric HTTP status code
// becomes an int attribute, and an empty route or status (nothing matched,
// no response) is left out, as the conventions say.
func semconvAttributes(set attribute.Set) attribute.Set {
	kvs := make([]attribute.KeyValue, 0, set.Len())
	for it := set.Iter(); it.Next(); {
		kv := it.Attribute()
		key, ok := semconvAttrs[string(kv.Key)]
		if !ok {
			kvs = append(kvs, kv)
			continue
		}
		val := kv.Value.AsString()
		switch key {
		case "http.route", "http.response.status_code":
			if val == "" {
				continue
			}
		}
		if key == "http.response.status_code" {
			if n, err := strconv.Atoi(val); err == nil {
				kvs = append(kvs, key.Int(n))
				continue
			}
		}
		kvs = append(kvs, key.String(val))
	}
	return attribute.NewSet(kvs...)
}
