package observe

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/observekit/observe/internal/envconfig"
	"github.com/observekit/observe/internal/tracing"
	"github.com/observekit/observe/redact"
)

// tracingSettings are the trace export settings: the OTLP exporter's and
// the batch queue's.
type tracingSettings struct {
	otlp  tracing.OTLPConfig
	batch tracing.BatchConfig
}

// loadTracingEnv reads the traces variables: OTEL_TRACES_EXPORTER, the OTLP
// section (envconfig.Env.OTLP; its certificate files are always read, as the
// traces exporter was the first to use them), the sampler with observe's
// tail sampling, OTEL_PROPAGATORS and the batch queue's OTEL_BSP_SCHEDULE_DELAY,
// OTEL_BSP_EXPORT_TIMEOUT (ms), OTEL_BSP_MAX_QUEUE_SIZE and
// OTEL_BSP_MAX_EXPORT_BATCH_SIZE.
func loadTracingEnv(env *envconfig.Env, c *config) {
	c.tracing.otlp = env.OTLP(envconfig.Traces, true)
	switch v := env.Get("OTEL_TRACES_EXPORTER"); v {
	case "":
		if c.tracing.otlp.Endpoint != "" {
			c.tracesExporter = "otlp"
		} else {
			c.tracesExporter = "memory"
		}
	case "otlp", "console", "none":
		c.tracesExporter = v
	default:
		env.Bad("OTEL_TRACES_EXPORTER", v, "otlp, console, none", nil)
	}
	if v := env.Get("OTEL_TRACES_SAMPLER"); v != "" {
		c.samplerName = v
	}
	c.samplerArg = env.Get("OTEL_TRACES_SAMPLER_ARG")
	if c.samplerName == tracing.TailSamplerName {
		c.tail = loadTailEnv(env, c.samplerArg)
	} else if _, err := tracing.NewSampler(c.samplerName, c.samplerArg); err != nil {
		if !tracing.IsSamplerName(c.samplerName) {
			env.Bad("OTEL_TRACES_SAMPLER", c.samplerName, tracing.SamplerNames+", "+tracing.TailSamplerName, nil)
		} else {
			env.Bad("OTEL_TRACES_SAMPLER_ARG", c.samplerArg, tracing.SamplerArgAccepted(c.samplerName), err)
		}
	}
	b := &c.tracing.batch
	env.Millis("OTEL_BSP_SCHEDULE_DELAY", &b.ScheduleDelay)
	env.Millis("OTEL_BSP_EXPORT_TIMEOUT", &b.ExportTimeout)
	env.PositiveInt("OTEL_BSP_MAX_QUEUE_SIZE", &b.MaxQueueSize)
	env.PositiveInt("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &b.MaxExportBatchSize)
	q := b.MaxQueueSize
	if q == 0 {
		q = 2048
	}
	if n := b.MaxExportBatchSize; n > q {
		env.Bad("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", strconv.Itoa(n), fmt.Sprintf("at most OTEL_BSP_MAX_QUEUE_SIZE (%d)", q), nil)
	}
	if v := env.Get("OTEL_PROPAGATORS"); v != "" {
		c.propagators = nil
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			switch p {
			case "tracecontext", "baggage", "b3", "b3multi", "none":
				c.propagators = append(c.propagators, p)
			case "":
			default:
				env.Bad("OTEL_PROPAGATORS", v, "tracecontext, baggage, b3, b3multi, none", fmt.Errorf("unknown propagator %q", p))
			}
		}
	}
}

// spanRedactor is the redaction policy spans are scrubbed with before
// export; a nil policy must stay a nil interface.
func spanRedactor(p *redact.Policy) tracing.Redactor {
	if p == nil {
		return nil
	}
	return p
}
