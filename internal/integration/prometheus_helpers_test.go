package integration

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/observekit/observe"
)

// promInit starts observe for a metrics test: admin on adminAddr ("off" for
// none), spans kept in process (so requests are sampled and carry
// exemplars), nothing exported, nothing printed. The environment a
// developer's shell may carry is cleared first.
func promInit(t *testing.T, adminAddr string, opts ...observe.Option) *observe.Observer {
	t.Helper()
	for _, v := range []string{
		"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
		"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME",
		"OBSERVE_ADMIN_TOKEN", "OBSERVE_NATIVE_HISTOGRAMS", "OBSERVE_METRIC_SERIES_LIMIT", "PYROSCOPE_SERVER_ADDRESS",
	} {
		t.Setenv(v, "")
	}
	t.Setenv("OBSERVE_ADMIN_ADDR", adminAddr)
	base := []observe.Option{
		observe.WithServiceName("shop"),
		observe.WithServiceVersion("1.2.3"),
		observe.WithEnvironment("test"),
		observe.WithLogWriter(io.Discard),
		observe.WithAccessLog(false),
	}
	obs, err := observe.Init(context.Background(), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := obs.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return obs
}

func observeSeriesLimit(n int) observe.Option { return observe.WithMetricSeriesLimit(n) }
