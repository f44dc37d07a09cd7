package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelmetric "go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"
)

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// TestMeterProviderPull: what user code records through the OpenTelemetry
// API appears on the same /metrics as observe's instruments.
func TestMeterProviderPull(t *testing.T) {
	m := newMetrics(t, Config{})
	mp, err := NewMeterProvider(context.Background(), m, MeterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Shutdown(context.Background())
	c, err := mp.MeterProvider().Meter("shop").Int64Counter("orders.placed", otelmetric.WithUnit("{order}"))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 3, otelmetric.WithAttributes(attribute.String("region", "eu")))
	m.HTTPServer.Observe("GET", "/a", 200, time.Millisecond, trace.SpanContext{})

	body := scrape(t, m.Handler())
	for _, want := range []string{`orders_placed_total{`, `region="eu"`, `otel_scope_name="shop"`, `http_server_request_duration_seconds_count{`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "target_info") {
		t.Error("target_info from the OTel exporter (observe's own comes from Config.Resource)")
	}

	// A second provider replaces the first on /metrics, no duplicate error.
	mp2, err := NewMeterProvider(context.Background(), m, MeterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer mp2.Shutdown(context.Background())
	g, _ := mp2.MeterProvider().Meter("shop").Int64Gauge("queue.depth")
	g.Record(context.Background(), 5)
	body = scrape(t, m.Handler())
	if !strings.Contains(body, "queue_depth{") || strings.Contains(body, "orders_placed_total") {
		t.Errorf("after a new provider:\n%s", body)
	}
}

// otlpReceiver is an OTLP/HTTP metrics endpoint decoding every request with
// the official protobuf types.
type otlpReceiver struct {
	mu   sync.Mutex
	reqs []*colmetricspb.ExportMetricsServiceRequest
	srv  *httptest.Server
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/v1/metrics" {
			http.NotFound(w, req)
			return
		}
		b, _ := io.ReadAll(req.Body)
		var msg colmetricspb.ExportMetricsServiceRequest
		if err := proto.Unmarshal(b, &msg); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.reqs = append(r.reqs, &msg)
		r.mu.Unlock()
		out, _ := proto.Marshal(&colmetricspb.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// metrics returns every metric received, by name, with its scope name.
func (r *otlpReceiver) metrics() (map[string]*metricspb.Metric, map[string]string, []*commonpb.KeyValue) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, scopes := map[string]*metricspb.Metric{}, map[string]string{}
	var res []*commonpb.KeyValue
	for _, req := range r.reqs {
		for _, rm := range req.GetResourceMetrics() {
			res = rm.GetResource().GetAttributes()
			for _, sm := range rm.GetScopeMetrics() {
				for _, mm := range sm.GetMetrics() {
					out[mm.GetName()] = mm
					scopes[mm.GetName()] = sm.GetScope().GetName()
				}
			}
		}
	}
	return out, scopes, res
}

func attrMap(kvs []*commonpb.KeyValue) map[string]*commonpb.AnyValue {
	out := map[string]*commonpb.AnyValue{}
	for _, kv := range kvs {
		out[kv.GetKey()] = kv.GetValue()
	}
	return out
}

// TestMeterProviderOTLPPush: with OTLP on, everything on the registry and
// the OTel API's metrics are pushed; observe's own under their semantic
// convention names, units and attribute keys.
func TestMeterProviderOTLPPush(t *testing.T) {
	recv := newOTLPReceiver(t)
	m := newMetrics(t, Config{Resource: resource.NewSchemaless(attribute.String("service.name", "checkout"))})
	mp, err := NewMeterProvider(context.Background(), m, MeterConfig{
		Resource: resource.NewSchemaless(attribute.String("service.name", "checkout")),
		OTLP:     &OTLPConfig{Protocol: "http/protobuf", Endpoint: recv.srv.URL + "/v1/metrics"},
		Interval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := mp.MeterProvider().Meter("shop").Int64Counter("orders.placed")
	c.Add(context.Background(), 2)
	m.HTTPServer.ObserveWithSizes("GET", "/users/{id}", 200, 20*time.Millisecond, 0, 512, sampled)
	m.HTTPServer.Observe("GET", "", 404, time.Millisecond, trace.SpanContext{})
	m.HTTPServer.Start("GET")
	m.HTTPClient.observe("GET", "api.example.com", 0, time.Millisecond, trace.SpanContext{})
	m.RPCServer.Observe("helloworld.Greeter/SayHello", 5, time.Millisecond, trace.SpanContext{})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := mp.Shutdown(ctx); err != nil { // Shutdown pushes a last time
		t.Fatal(err)
	}
	got, scopes, res := recv.metrics()
	if v := attrMap(res)["service.name"].GetStringValue(); v != "checkout" {
		t.Errorf("resource service.name = %q", v)
	}
	for name, unit := range map[string]string{
		"http.server.request.duration":   "s",
		"http.server.active_requests":    "{request}",
		"http.server.response.body.size": "By",
		"http.server.request.body.size":  "By",
		"http.client.request.duration":   "s",
		"rpc.server.call.duration":       "s",
	} {
		mm := got[name]
		if mm == nil {
			t.Errorf("%s not pushed; got %v", name, keys(got))
			continue
		}
		if mm.GetUnit() != unit {
			t.Errorf("%s unit %q, want %q", name, mm.GetUnit(), unit)
		}
		if scopes[name] != instrumentationName {
			t.Errorf("%s scope %q", name, scopes[name])
		}
	}
	for _, name := range []string{HTTPServerDuration, "target_info"} {
		if got[name] != nil {
			t.Errorf("%s pushed under its Prometheus name", name)
		}
	}
	if got["orders.placed"] == nil {
		t.Errorf("the OTel API counter was not pushed: %v", keys(got))
	}
	if got["go_build_info"] == nil {
		t.Errorf("other registry metrics were not pushed: %v", keys(got))
	}

	dur := got["http.server.request.duration"].GetHistogram()
	var found, noRoute bool
	for _, dp := range dur.GetDataPoints() {
		a := attrMap(dp.GetAttributes())
		if a["http.route"].GetStringValue() == "/users/{id}" {
			found = true
			if a["http.request.method"].GetStringValue() != "GET" || a["http.response.status_code"].GetIntValue() != 200 {
				t.Errorf("attributes %v", dp.GetAttributes())
			}
			if len(dp.GetExemplars()) != 1 || trace.TraceID(dp.GetExemplars()[0].GetTraceId()) != sampled.TraceID() {
				t.Errorf("exemplars %v, want trace %s", dp.GetExemplars(), sampled.TraceID())
			}
		}
		if _, ok := a["http.route"]; !ok && a["http.response.status_code"].GetIntValue() == 404 {
			noRoute = true
		}
	}
	if !found || !noRoute {
		t.Errorf("data points: %v", dur.GetDataPoints())
	}
	if s := got["http.server.active_requests"].GetSum(); s == nil || s.GetIsMonotonic() {
		t.Errorf("active_requests is not an UpDownCounter: %v", got["http.server.active_requests"])
	}
	for _, dp := range got["http.client.request.duration"].GetHistogram().GetDataPoints() {
		a := attrMap(dp.GetAttributes())
		if _, ok := a["http.response.status_code"]; ok {
			t.Errorf("a request without response carries a status code: %v", a)
		}
		if a["server.address"].GetStringValue() != "api.example.com" {
			t.Errorf("client attributes %v", a)
		}
	}
	for _, dp := range got["rpc.server.call.duration"].GetHistogram().GetDataPoints() {
		a := attrMap(dp.GetAttributes())
		if a["rpc.method"].GetStringValue() != "helloworld.Greeter/SayHello" || a["rpc.response.status_code"].GetStringValue() != "NOT_FOUND" || a["rpc.system.name"].GetStringValue() != "grpc" {
			t.Errorf("rpc attributes %v", a)
		}
	}
}

type failingExporter struct{ sdkmetric.Exporter }

func (failingExporter) Export(context.Context, *metricdata.ResourceMetrics) error {
	return errors.New("collector down")
}

func TestMetricExportFailuresCounted(t *testing.T) {
	exp := failingExporter{Exporter: nopExporter{}}
	m := newMetrics(t, Config{})
	mp, err := NewMeterProvider(context.Background(), m, MeterConfig{Exporter: exp, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Shutdown(context.Background())
	if err := mp.forceFlush(context.Background()); err == nil {
		t.Fatal("ForceFlush succeeded with a failing exporter")
	}
	if v := series(t, m, "observe_export_failures_total")["signal=metrics"].GetCounter().GetValue(); v != 1 {
		t.Errorf(`observe_export_failures_total{signal="metrics"} = %v, want 1`, v)
	}
}

type nopExporter struct{}

func (nopExporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}
func (nopExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}
func (nopExporter) Export(context.Context, *metricdata.ResourceMetrics) error { return nil }
func (nopExporter) ForceFlush(context.Context) error                          { return nil }
func (nopExporter) Shutdown(context.Context) error                            { return nil }
