package observe

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/observekit/observe/logging"
	"github.com/observekit/observe/redact"
	sdklog "go.opentelemetry.io/otel/sdk/log"
)

// logSettings is the logging part of config (level, format and access log
// are in config itself).
type logSettings struct {
	sampling      logging.SampleRates // OBSERVE_LOG_SAMPLING
	maxValueBytes int                 // OBSERVE_LOG_MAX_VALUE_BYTES
	otlp          logging.OTLPConfig  // the push, with OTEL_LOGS_EXPORTER=otlp
	exporter      sdklog.Exporter     // WithLogExporter
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
// log: sampling, the value size limit, and the OTLP push settings (the
// general OTEL_EXPORTER_OTLP_* ones, overridden by the _LOGS_ ones).
func loadLogsEnv(getenv func(string) string, c *config, bad func(variable, value, accepted string, err error), secret func(variable, accepted string, err error)) {
	ls := &c.logs
	if v := strings.TrimSpace(getenv("OBSERVE_LOG_SAMPLING")); v != "" {
		r, err := logging.ParseSampleRates(v)
		if err != nil {
			bad("OBSERVE_LOG_SAMPLING", v, `level=rate pairs such as "debug=0.1,info=0.5" (levels debug, info; rates in (0, 1]), or "off"`, err)
		}
		ls.sampling = r
	}
	if v := strings.TrimSpace(getenv("OBSERVE_LOG_MAX_VALUE_BYTES")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n == 0 || n > 1<<30 {
			bad("OBSERVE_LOG_MAX_VALUE_BYTES", v, "a number of bytes (at least 1; negative: no limit)", nil)
		} else {
			ls.maxValueBytes = n
		}
	}

	ls.otlp = logging.OTLPConfig{Protocol: "http/protobuf", Timeout: 10 * time.Second}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"} {
		switch v := strings.TrimSpace(getenv(name)); v {
		case "":
		case "grpc", "http/protobuf":
			ls.otlp.Protocol = v
		default:
			if name != "OTEL_EXPORTER_OTLP_PROTOCOL" { // the general one is reported with the traces
				bad(name, v, "grpc, http/protobuf", nil)
			}
		}
	}
	if v := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")); v != "" {
		if err := checkEndpoint(v); err != nil {
			bad("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", v, "an absolute URL such as http://collector:4318/v1/logs", err)
		}
		ls.otlp.Endpoint = v
	} else if v := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")); v != "" && checkEndpoint(v) == nil {
		ls.otlp.Endpoint = v
		if ls.otlp.Protocol == "http/protobuf" {
			ls.otlp.Endpoint = strings.TrimSuffix(v, "/") + "/v1/logs"
		}
	}
	if v := getenv("OTEL_EXPORTER_OTLP_HEADERS"); strings.TrimSpace(v) != "" {
		if h, err := parseHeaders(v); err == nil { // a bad one is reported with the traces
			ls.otlp.Headers = h
		}
	}
	if v := getenv("OTEL_EXPORTER_OTLP_LOGS_HEADERS"); strings.TrimSpace(v) != "" {
		h, err := parseHeaders(v)
		if err != nil {
			// Headers carry credentials: never echo the value.
			secret("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "comma-separated key=value pairs, values percent-encoded", err)
		}
		if ls.otlp.Headers == nil {
			ls.otlp.Headers = map[string]string{}
		}
		for k, val := range h {
			ls.otlp.Headers[k] = val
		}
	}
	ls.otlp.Endpoint, ls.otlp.Headers = endpointCredentials(ls.otlp.Endpoint, ls.otlp.Headers)
	for _, name := range []string{"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_LOGS_INSECURE"} {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				if name != "OTEL_EXPORTER_OTLP_INSECURE" {
					bad(name, v, "true, false", nil)
				}
				continue
			}
			ls.otlp.Insecure = b
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT"} {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			ms, err := strconv.Atoi(v)
			if err != nil || ms <= 0 {
				if name != "OTEL_EXPORTER_OTLP_TIMEOUT" {
					bad(name, v, "a positive number of milliseconds", nil)
				}
				continue
			}
			ls.otlp.Timeout = time.Duration(ms) * time.Millisecond
		}
	}
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
	o.levels = logging.NewLevelController(cfg.logLevel)
	opts := logging.Options{
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
		DebugToken:    cfg.adminToken,
		NoAccessLog:   !cfg.accessLog,
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
		oc := cfg.logs.otlp
		oc.Resource = o.resource
		oc.Exporter = cfg.logs.exporter
		lp, err := logging.NewLoggerProvider(ctx, oc)
		if err != nil {
			return &ConfigError{Variable: "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", Value: oc.Endpoint, Err: err}
		}
		o.logExport = lp
		opts.LoggerProvider = lp
	}
	o.logHandler = logging.New(opts)
	o.logger = slog.New(o.logHandler)
	o.prevLogger = slog.Default()
	slog.SetDefault(o.logger)
	logging.SetRoot(o.logHandler)
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
