package observe

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/observekit/observe/internal/envconfig"
	ilogging "github.com/observekit/observe/internal/logging"
	"github.com/observekit/observe/internal/otlpexport"
	"github.com/observekit/observe/internal/wiring"
	"github.com/observekit/observe/logging"
	"github.com/observekit/observe/redact"
	sdklog "go.opentelemetry.io/otel/sdk/log"
)

// logSettings is the logging part of config (level, format and access log
// are in config itself).
type logSettings struct {
	sampling      ilogging.SampleRates // OBSERVE_LOG_SAMPLING
	maxValueBytes int                  // OBSERVE_LOG_MAX_VALUE_BYTES
	otlp          otlpexport.Config    // the push, with OTEL_LOGS_EXPORTER=otlp
	exporter      sdklog.Exporter      // WithLogExporter
}

// WithLogSampling keeps only a fraction of DEBUG and INFO lines (WARN and
// ERROR are never sampled; lines of sampled traces and of per-request debug
// are all kept; kept lines carry sample_rate). It overrides
// OBSERVE_LOG_SAMPLING ("debug=0.1,info=0.5").
func WithLogSampling(rates logging.SampleRates) Option {
	return func(c *config) { c.logs.sampling = rates }
}

// WithLogMaxValueBytes sets the size past which a string value in a log
// line is cut, with a "…[truncated]" marker (default 16 KiB; negative: no
// limit). It overrides OBSERVE_LOG_MAX_VALUE_BYTES.
func WithLogMaxValueBytes(n int) Option {
	return func(c *config) { c.logs.maxValueBytes = n }
}

// WithLogExporter sends every log record (batched, after the same levels,
// sampling and redaction as the JSON lines) to exp as well, whatever
// OTEL_LOGS_EXPORTER says. Useful for tests and custom backends.
func WithLogExporter(exp sdklog.Exporter) Option {
	return func(c *config) { c.logs.exporter = panicSafeLogExporter(exp) }
}

// loadLogsEnv reads the logging variables beyond level, format and access
// log: OTEL_LOGS_EXPORTER, sampling, the value size limit, and the OTLP push
// section (envconfig.Env.OTLP; certificate files read when the push is on).
func loadLogsEnv(env *envconfig.Env, c *config) {
	ls := &c.logs
	if v := env.Get("OBSERVE_LOG_SAMPLING"); v != "" {
		r, err := ilogging.ParseSampleRates(v)
		if err != nil {
			env.Bad("OBSERVE_LOG_SAMPLING", v, `level=rate pairs such as "debug=0.1,info=0.5" (levels debug, info; rates in (0, 1]), or "off"`, err)
		}
		ls.sampling = r
	}
	env.Int("OBSERVE_LOG_MAX_VALUE_BYTES", "a number of bytes (at least 1; negative: no limit)",
		func(n int) bool { return n != 0 && n <= 1<<30 }, &ls.maxValueBytes)
	env.Enum("OTEL_LOGS_EXPORTER", &c.logsExporter, "none", "otlp")
	ls.otlp = env.OTLP(envconfig.Logs, c.logsExporter == "otlp")
}

// checkLogs validates what options may have set.
func (c *config) checkLogs() error {
	if err := c.logs.sampling.Validate(); err != nil {
		return &ConfigError{Variable: "WithLogSampling", Value: fmt.Sprintf("%+v", c.logs.sampling), Accepted: "rates in (0, 1]", Err: err}
	}
	return nil
}

// startLogs builds the logging pipeline and installs it as slog.Default()
// and the root of logging.Named loggers. It runs first in Init, after the
// resource, so everything after can log.
func (o *Observer) startLogs(ctx context.Context) error {
	cfg := o.cfg
	o.levels = ilogging.NewLevelController(cfg.logLevel)
	opts := ilogging.Options{
		Writer: cfg.logWriter,
		Format: cfg.logFormat,
		Levels: o.levels,
		Fields: []slog.Attr{
			slog.String("service.name", cfg.serviceName),
			slog.String("service.version", cfg.serviceVersion),
			slog.String("deployment.environment", cfg.environment),
		},
		MaxValueBytes: cfg.logs.maxValueBytes,
		Sampling:      cfg.logs.sampling,
		DebugToken:    cfg.debugToken,
		NoAccessLog:   !cfg.accessLog,
		Ring:          o.newStatusLines(),
		Buffered:      logBuffered(cfg),
	}
	if o.redactor == nil {
		var err error
		if o.redactor, err = newRedactor(cfg); err != nil {
			return err
		}
	}
	opts.Redactor = o.redactor
	// OTLP export: with OTEL_LOGS_EXPORTER=otlp or WithLogExporter, never
	// with OTEL_SDK_DISABLED=true.
	if !cfg.sdkDisabled && (cfg.logsExporter == "otlp" || cfg.logs.exporter != nil) {
		oc := ilogging.OTLPConfig{Export: cfg.logs.otlp, Resource: o.resource, Exporter: cfg.logs.exporter}
		lp, err := ilogging.NewLoggerProvider(ctx, oc)
		if err != nil {
			return &ConfigError{Variable: "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", Value: oc.Export.Endpoint, Err: err}
		}
		o.logExport = lp
		opts.LoggerProvider = lp
	}
	o.logHandler = ilogging.New(opts)
	o.logger = slog.New(o.logHandler)
	o.prevLogger = slog.Default()
	slog.SetDefault(o.logger)
	wiring.LogRoot.Store(o.logHandler)
	return nil
}

// logBuffered reports whether log lines are buffered: OBSERVE_LOG_BUFFER
// when set, else for an *os.File (stdout, stderr, a file) and not for any
// other writer, which a program or test may read right after logging.
func logBuffered(cfg *config) bool {
	switch cfg.logBuffer {
	case "on":
		return true
	case "off":
		return false
	}
	_, isFile := cfg.logWriter.(*os.File)
	return isFile
}

// newRedactor builds the process's redaction policy from the built-in rules,
// OBSERVE_REDACT_KEYS / WithRedactKeys and OBSERVE_REDACT_HASH_KEY. Logs
// use it for every record, on the JSON lines and the OTLP export alike.
func newRedactor(cfg *config) (*redact.Policy, error) {
	var opts []redact.Option
	if len(cfg.redactKeys) > 0 {
		opts = append(opts, redact.WithKeys(cfg.redactKeys...))
	}
	if len(cfg.redactHashKey) > 0 {
		opts = append(opts, redact.WithHashKey(cfg.redactHashKey))
	}
	p, err := redact.New(opts...)
	if err != nil {
		return nil, &ConfigError{Variable: "OBSERVE_REDACT_KEYS", Value: strings.Join(cfg.redactKeys, ","), Accepted: "comma-separated key names with letters or digits", Err: err}
	}
	return p, nil
}

// stopLogs flushes and stops the OTLP export of log records. A flush the
// collector refuses is not an error here (it is counted in
// observe_export_failures_total{signal="logs"}, as for spans); running out
// of ctx's time is.
func (o *Observer) stopLogs(ctx context.Context) error {
	if o.logExport == nil {
		return nil
	}
	err := o.logExport.Shutdown(ctx)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("flushing log records: %w", ctx.Err())
	}
	return nil
}

// closeLogLines writes the buffered log lines and stops their background
// writer, by ctx's deadline: a log writer that blocks (a full pipe) makes
// Shutdown return ctx's error, and the write finishes on its own.
func (o *Observer) closeLogLines(ctx context.Context) error {
	if o.logHandler == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- o.logHandler.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// A grace for the usual case, a write of a few microseconds.
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("writing buffered log lines: %w", ctx.Err())
	}
}
