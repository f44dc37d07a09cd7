package integration

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/internal/logging"
	"go.opentelemetry.io/otel"
)

// The contract's line shape through observe.Init, with the real redaction
// policy, for sampled and unsampled spans.

func TestLogsLineShapeThroughInit(t *testing.T) {
	for _, sampler := range []string{"always_on", "always_off"} {
		t.Run(sampler, func(t *testing.T) {
			_, lb := logsInit(t, map[string]string{"OTEL_TRACES_SAMPLER": sampler})
			ctx, span := otel.Tracer("t").Start(context.Background(), "op")
			slog.InfoContext(ctx, "order placed", "order_id", 42, "password", "hunter2", "contact", "mail jane@example.com now")
			span.End()
			lines := lb.find(t, "order placed")
			if len(lines) != 1 {
				t.Fatalf("lines: %s", lb.String())
			}
			m := lines[0]
			sc := span.SpanContext()
			if m["trace_id"] != sc.TraceID().String() || m["span_id"] != sc.SpanID().String() {
				t.Errorf("%s span: ids %v/%v, want %s/%s", sampler, m["trace_id"], m["span_id"], sc.TraceID(), sc.SpanID())
			}
			if m["service.name"] != "checkout" || m["service.version"] != "1.4.2" || m["deployment.environment"] != "staging" || m["level"] != "INFO" {
				t.Errorf("fields: %v", m)
			}
			if m["password"] != "[REDACTED]" || strings.Contains(lb.String(), "hunter2") || strings.Contains(lb.String(), "jane@example.com") {
				t.Errorf("not redacted: %s", lb.String())
			}
			raw := strings.Split(strings.TrimSpace(lb.String()), "\n")
			var line string
			for _, l := range raw {
				if strings.Contains(l, `"order placed"`) {
					line = l
				}
			}
			var keys []string
			for _, k := range []string{`"time"`, `"level"`, `"msg"`, `"service.name"`, `"service.version"`, `"deployment.environment"`, `"trace_id"`, `"span_id"`, `"order_id"`} {
				keys = append(keys, k)
				if !strings.Contains(line, k+":") {
					t.Fatalf("key %s missing: %s", k, line)
				}
			}
			last := -1
			for _, k := range keys {
				i := strings.Index(line, k+":")
				if i < last {
					t.Errorf("key %s out of order: %s", k, line)
				}
				last = i
			}
		})
	}
}

func TestLogsNamedLoggerThroughInit(t *testing.T) {
	obs, lb := logsInit(t, nil)
	logging.Named("db").Info("connected", "err", errors.New("none"))
	if _, err := instance.Of(obs).Levels.Set("db", slog.LevelDebug, 0, nil); err != nil {
		t.Fatal(err)
	}
	logging.Named("db.pool").Debug("conn acquired")
	logging.Named("cache").Debug("hidden")
	if len(lb.find(t, "connected")) != 1 || lb.find(t, "conn acquired")[0]["logger"] != "db.pool" || len(lb.find(t, "hidden")) != 0 {
		t.Errorf("named loggers: %s", lb.String())
	}
	if obs.Logger() != slog.Default() {
		t.Error("slog.Default() is not the observe logger")
	}
}

func TestLogsTextFormat(t *testing.T) {
	_, lb := logsInit(t, map[string]string{"OBSERVE_LOG_FORMAT": "text"})
	slog.Info("plain text", "k", "v w")
	s := lb.String()
	if !strings.Contains(s, `msg="plain text"`) || !strings.Contains(s, "service.name=checkout") || !strings.Contains(s, `k="v w"`) {
		t.Errorf("text line: %s", s)
	}
}

func TestLogsSamplingThroughInit(t *testing.T) {
	obs, lb := logsInit(t, map[string]string{"OBSERVE_LOG_SAMPLING": "info=0.5", "OBSERVE_LOG_LEVEL": "debug"})
	for i := 0; i < 400; i++ {
		slog.Info("sampled")
		slog.Warn("never sampled")
	}
	kept := lb.find(t, "sampled")
	if len(kept) < 120 || len(kept) > 280 || len(lb.find(t, "never sampled")) != 400 {
		t.Fatalf("kept %d of 400 INFO, %d of 400 WARN", len(kept), len(lb.find(t, "never sampled")))
	}
	if kept[0]["sample_rate"] != 0.5 {
		t.Errorf("sample_rate: %v", kept[0])
	}
	h, ok := obs.Logger().Handler().(*logging.Handler)
	if !ok || h.Dropped() != uint64(400-len(kept)) {
		t.Errorf("Dropped() = %d, want %d", h.Dropped(), 400-len(kept))
	}
}

func TestLogsConfigErrors(t *testing.T) {
	for env, want := range map[string]string{
		"OBSERVE_LOG_SAMPLING=warn=0.5":              "OBSERVE_LOG_SAMPLING",
		"OBSERVE_LOG_SAMPLING=debug=2":               "OBSERVE_LOG_SAMPLING",
		"OBSERVE_LOG_LEVEL=verbose":                  "OBSERVE_LOG_LEVEL",
		"OBSERVE_LOG_FORMAT=xml":                     "OBSERVE_LOG_FORMAT",
		"OTEL_LOGS_EXPORTER=kafka":                   "OTEL_LOGS_EXPORTER",
		"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=not a url": "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
		"OTEL_EXPORTER_OTLP_LOGS_PROTOCOL=http/json": "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
		"OBSERVE_LOG_MAX_VALUE_BYTES=lots":           "OBSERVE_LOG_MAX_VALUE_BYTES",
	} {
		for _, v := range logsEnvVars {
			t.Setenv(v, "")
		}
		t.Setenv("OBSERVE_ADMIN_ADDR", "off")
		k, v, _ := strings.Cut(env, "=")
		t.Setenv(k, v)
		obs, err := observe.Init(context.Background())
		if err == nil {
			obs.Shutdown(context.Background())
			t.Errorf("%s accepted", env)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not name %s", env, err, want)
		}
		var ce *observe.ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%s: not a ConfigError: %T", env, err)
		}
	}
	t.Setenv("OBSERVE_LOG_SAMPLING", "")
	if _, err := observe.Init(context.Background(), observe.WithLogSampling(logging.SampleRates{Debug: 7})); err == nil || !strings.Contains(err.Error(), "WithLogSampling") {
		t.Errorf("bad WithLogSampling: %v", err)
	}
}

func TestLogsMaxValueBytesOption(t *testing.T) {
	_, lb := logsInit(t, map[string]string{"OBSERVE_LOG_MAX_VALUE_BYTES": "10"}, observe.WithLogMaxValueBytes(20))
	slog.Info("cut", "v", strings.Repeat("a", 100))
	v := lb.find(t, "cut")[0]["v"].(string)
	if !strings.HasPrefix(v, strings.Repeat("a", 20)+"…") || strings.HasPrefix(v, strings.Repeat("a", 21)) {
		t.Errorf("option must win over env: %q", v)
	}
}
