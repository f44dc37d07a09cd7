package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/testbackend"
)

// logsBuffer collects the JSON lines of one observe instance.
type logsBuffer struct{ testbackend.LockedBuffer }

// logsLines decodes JSON lines, failing the test on one that is not JSON.
func logsLines(t testing.TB, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON (%v): %q", err, l)
		}
		out = append(out, m)
	}
	return out
}

func (lb *logsBuffer) lines(t testing.TB) []map[string]any { return logsLines(t, lb.String()) }

// find returns the lines whose msg is msg.
func (lb *logsBuffer) find(t testing.TB, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range lb.lines(t) {
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// logsEnvVars are cleared before every logs test, so the developer's
// environment cannot leak in.
var logsEnvVars = []string{
	"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS",
	"OTEL_EXPORTER_OTLP_LOGS_HEADERS", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
	"OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME", "OTEL_PROPAGATORS",
	"OBSERVE_ADMIN_TOKEN", "OBSERVE_DEBUG_TOKEN", "OBSERVE_LOG_LEVEL", "OBSERVE_LOG_FORMAT", "OBSERVE_ACCESS_LOG",
	"OBSERVE_LOG_SAMPLING", "OBSERVE_REDACT_KEYS", "PYROSCOPE_SERVER_ADDRESS",
}

// logsInit starts observe with env (on top of a clean environment), writing
// JSON lines into the returned buffer, and shuts it down at the end of the
// test.
func logsInit(t *testing.T, env map[string]string, opts ...observe.Option) (*observe.Observer, *logsBuffer) {
	t.Helper()
	for _, v := range logsEnvVars {
		t.Setenv(v, "")
	}
	t.Setenv("OBSERVE_ADMIN_ADDR", "off")
	for k, v := range env {
		t.Setenv(k, v)
	}
	lb := &logsBuffer{}
	base := []observe.Option{
		observe.WithServiceName("checkout"),
		observe.WithServiceVersion("1.4.2"),
		observe.WithEnvironment("staging"),
		observe.WithLogWriter(lb),
	}
	obs, err := observe.Init(context.Background(), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := obs.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return obs, lb
}

// logsEventually polls cond until it holds or d passes.
func logsEventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !testbackend.Eventually(d, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}
