package observe_test

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

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel"
	otelmetric "go.opentelemetry.io/otel/metric"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/proto"
)

func TestMetricsConfigRejectsMalformed(t *testing.T) {
	cleanEnv(t)
	for name, value := range map[string]string{
		"OBSERVE_NATIVE_HISTOGRAMS":           "maybe",
		"OBSERVE_METRIC_SERIES_LIMIT":         "0",
		"OTEL_METRIC_EXPORT_INTERVAL":         "-5",
		"OTEL_METRIC_EXPORT_TIMEOUT":          "soon",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "ftp://collector",
		"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json",
	} {
		t.Setenv(name, value)
	}
	_, err := observe.Init(context.Background(), observe.WithLogWriter(io.Discard))
	if err == nil {
		t.Fatal("Init accepted malformed metrics settings")
	}
	for _, name := range []string{"OBSERVE_NATIVE_HISTOGRAMS", "OBSERVE_METRIC_SERIES_LIMIT", "OTEL_METRIC_EXPORT_INTERVAL",
		"OTEL_METRIC_EXPORT_TIMEOUT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	var ce *observe.ConfigError
	if !errors.As(err, &ce) {
		t.Errorf("not a *ConfigError: %T", err)
	}

	cleanEnv(t)
	if _, err := observe.Init(context.Background(), observe.WithLogWriter(io.Discard), observe.WithDurationBuckets(1, 0.5)); err == nil || !strings.Contains(err.Error(), "WithDurationBuckets") {
		t.Errorf("unsorted buckets: %v", err)
	}
}

func scrapeAdmin(t *testing.T, obs *observe.Observer, accept string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+obs.AdminAddr()+"/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestMetricsOTelAPIOnAdminEndpoint: after Init, plain otel.Meter calls land
// on the admin /metrics beside observe's instruments, target_info and the
// self-telemetry.
func TestMetricsOTelAPIOnAdminEndpoint(t *testing.T) {
	cleanEnv(t)
	t.Setenv("OBSERVE_NATIVE_HISTOGRAMS", "true")
	obs, _ := initObs(t, observe.WithMetricSeriesLimit(50))
	c, err := otel.Meter("jobs").Int64Counter("jobs.done", withDescription("Jobs done."))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 2)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {})
	rec := httptest.NewRecorder()
	middleware.HTTP(mux).ServeHTTP(rec, httptest.NewRequest("GET", "/jobs/7", nil))

	body := scrapeAdmin(t, obs, "")
	for _, want := range []string{
		`jobs_done_total{otel_scope_name="jobs"`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/jobs/{id}"} 1`,
		`target_info{`, `service_name="svc"`, `service_version="1.2.3"`, `deployment_environment="test"`,
		`go_build_info{`, `observe_spans_dropped_total 0`, `observe_metric_series_limit 50`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Native histograms are on: visible in the protobuf exposition only.
	mfs, err := instance.Of(obs).Metrics.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "http_server_request_duration_seconds" && mf.GetMetric()[0].GetHistogram().Schema == nil {
			t.Error("OBSERVE_NATIVE_HISTOGRAMS=true but no native histogram")
		}
	}
}

// metricsReceiver is an OTLP/HTTP endpoint: it decodes /v1/metrics with the
// official types and accepts anything else.
type metricsReceiver struct {
	mu    sync.Mutex
	names map[string]bool
	srv   *httptest.Server
}

func newMetricsReceiver(t *testing.T) *metricsReceiver {
	r := &metricsReceiver{names: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		if req.URL.Path == "/v1/metrics" {
			var msg colmetricspb.ExportMetricsServiceRequest
			if err := proto.Unmarshal(b, &msg); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.mu.Lock()
			for _, rm := range msg.GetResourceMetrics() {
				for _, sm := range rm.GetScopeMetrics() {
					for _, m := range sm.GetMetrics() {
						r.names[m.GetName()] = true
					}
				}
			}
			r.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *metricsReceiver) has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.names[name]
}

// TestMetricsOTLPPush: with OTEL_METRICS_EXPORTER including otlp, observe's
// instruments (semconv names) and the OTel API's metrics are pushed, to the
// per-signal endpoint or to the general one plus /v1/metrics; /metrics keeps
// working.
func TestMetricsOTLPPush(t *testing.T) {
	for _, general := range []bool{false, true} {
		t.Run(map[bool]string{false: "metrics_endpoint", true: "general_endpoint"}[general], func(t *testing.T) {
			cleanEnv(t)
			recv := newMetricsReceiver(t)
			t.Setenv("OTEL_METRICS_EXPORTER", "prometheus,otlp")
			t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
			if general {
				t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.srv.URL)
			} else {
				t.Setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", recv.srv.URL+"/v1/metrics")
			}
			obs, _ := initObs(t)
			c, _ := otel.Meter("jobs").Int64Counter("jobs.done")
			c.Add(context.Background(), 1)
			mux := http.NewServeMux()
			mux.HandleFunc("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {})
			middleware.HTTP(mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/jobs/7", nil))

			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) && !(recv.has("http.server.request.duration") && recv.has("jobs.done")) {
				time.Sleep(50 * time.Millisecond)
			}
			for _, name := range []string{"http.server.request.duration", "http.server.active_requests", "jobs.done"} {
				if !recv.has(name) {
					t.Errorf("%s not pushed", name)
				}
			}
			if recv.has("http_server_request_duration_seconds") {
				t.Error("pushed under the Prometheus name")
			}
			if !strings.Contains(scrapeAdmin(t, obs, ""), "http_server_request_duration_seconds_count") {
				t.Error("/metrics stopped working with the push on")
			}
		})
	}
}

func withDescription(d string) otelmetric.Int64CounterOption { return otelmetric.WithDescription(d) }
