package observe

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/observekit/observe/internal/envconfig"
	"github.com/observekit/observe/internal/logging"
	itracing "github.com/observekit/observe/internal/tracing"
	"github.com/observekit/observe/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// config is the one typed view of every setting. It is built once by
// loadConfig from defaults, then the environment, then the options, and the
// signal packages receive values from it, never the environment itself.
type config struct {
	serviceName    string
	serviceVersion string
	environment    string
	resourceAttrs  []keyValue // OTEL_RESOURCE_ATTRIBUTES, in order

	logWriter io.Writer
	logLevel  slog.Level
	logFormat string // json | text
	accessLog bool
	logBuffer string // OBSERVE_LOG_BUFFER: on | off | "" (on for *os.File writers)

	sdkDisabled bool

	tracesExporter  string // otlp | console | none | memory
	samplerName     string
	samplerArg      string
	propagators     []string
	spanExporter    sdktrace.SpanExporter // programmatic override (tests, custom backends)
	tail            *itracing.TailConfig  // local tail sampling (OTEL_TRACES_SAMPLER=observe_tail)
	tracing         tracingSettings       // OTLP export and batch queue (tracing_config.go)
	spanStoreSize   int                   // the status page's trace store (status_config.go)
	statusLogBytes  int
	statusLogLines  int
	metricsExporter []string // prometheus, otlp (prometheus always serves /metrics unless none)
	logsExporter    string   // none | otlp
	metrics         metricsSettings

	// The ring of CPU profiles behind the profile of a trace (status_profile.go).
	statusProfiles  int
	statusProfBytes int
	statusProfEvery time.Duration // how often a CPU profile is cut; tests shorten it

	logs logSettings // sampling, value size, OTLP push (logs_config.go)

	anomaly anomalySettings // anomaly_config.go

	adminAddr  string // "" when off
	adminToken string
	debugToken string // OBSERVE_DEBUG_TOKEN: per-request debug; "" off

	redactKeys    []string
	redactHashKey []byte

	pyroscopeAddr     string
	pyroscopeUser     string
	pyroscopePassword string

	profileMutex          bool
	profileBlock          bool
	profileLinks          *bool // nil: on when pushing to Pyroscope
	profileUploadInterval time.Duration

	health healthSettings // startup gate, drain delay (drain.go)
}

type keyValue struct{ key, value string }

// Option configures Init. Options win over environment variables, which win
// over defaults.
type Option func(*config)

// WithServiceName sets service.name. It overrides OTEL_SERVICE_NAME.
func WithServiceName(name string) Option { return func(c *config) { c.serviceName = name } }

// WithServiceVersion sets service.version.
func WithServiceVersion(v string) Option { return func(c *config) { c.serviceVersion = v } }

// WithEnvironment sets deployment.environment.
func WithEnvironment(env string) Option { return func(c *config) { c.environment = env } }

// WithLogWriter sets where JSON log lines go (default os.Stdout).
func WithLogWriter(w io.Writer) Option { return func(c *config) { c.logWriter = w } }

// WithLogLevel sets the initial global log level. It overrides OBSERVE_LOG_LEVEL.
func WithLogLevel(l slog.Level) Option { return func(c *config) { c.logLevel = l } }

// WithAdminAddr sets the admin listener address; "off" or "" disables the
// listener (AdminHandler still works). It overrides OBSERVE_ADMIN_ADDR.
func WithAdminAddr(addr string) Option {
	return func(c *config) {
		if addr == "off" {
			addr = ""
		}
		c.adminAddr = addr
	}
}

// WithAdminToken sets the bearer token protecting admin endpoints. It
// overrides OBSERVE_ADMIN_TOKEN.
func WithAdminToken(token string) Option { return func(c *config) { c.adminToken = token } }

// WithSpanExporter sends finished spans to exp (batched), whatever
// OTEL_TRACES_EXPORTER says. Useful for tests and custom backends.
func WithSpanExporter(exp sdktrace.SpanExporter) Option {
	return func(c *config) { c.spanExporter = panicSafeSpanExporter(exp); c.tracesExporter = "custom" }
}

// WithTailSampling turns local tail sampling on (the README's "Local tail sampling"):
// every error and slow trace is kept, and tc.Baseline of the rest. It
// overrides OTEL_TRACES_SAMPLER and the OBSERVE_TAIL_* variables.
func WithTailSampling(tc tracing.TailConfig) Option {
	return func(c *config) { c.samplerName = itracing.TailSamplerName; c.tail = &tc }
}

// WithRedactKeys adds sensitive keys to the redaction policy, on top of the
// built-in list and OBSERVE_REDACT_KEYS.
func WithRedactKeys(keys ...string) Option {
	return func(c *config) { c.redactKeys = append(c.redactKeys, keys...) }
}

// WithAccessLog switches the per-request access log line on or off. It
// overrides OBSERVE_ACCESS_LOG.
func WithAccessLog(on bool) Option { return func(c *config) { c.accessLog = on } }

// ConfigError is returned by Init for a malformed setting. Variable names
// the environment variable (or option) at fault; the message lists what is
// accepted.
type ConfigError = envconfig.Error

// secretConfigError is a ConfigError whose value must never be echoed.
func secretConfigError(variable, accepted string, err error) *ConfigError {
	return &ConfigError{Variable: variable, Value: "<redacted>", Accepted: accepted, Err: err}
}

// loadConfig builds the configuration: defaults, then environment (through
// getenv), then options. Every malformed variable is reported, joined.
func loadConfig(getenv func(string) string, opts []Option) (*config, error) {
	c := &config{
		logWriter:       os.Stdout,
		logLevel:        slog.LevelInfo,
		logFormat:       "json",
		accessLog:       true,
		samplerName:     "parentbased_always_on",
		propagators:     []string{"tracecontext", "baggage"},
		metricsExporter: []string{"prometheus"},
		logsExporter:    "none",
		adminAddr:       ":9464",
		anomaly:         defaultAnomalySettings(),
	}
	env := envconfig.New(getenv)
	env.Bool("OTEL_SDK_DISABLED", &c.sdkDisabled)
	loadResourceEnv(env, c)
	loadTracingEnv(env, c)
	loadMetricsEnv(env, c)
	loadLogsEnv(env, c)
	loadAdminEnv(env, c)
	loadRedactEnv(env, c)
	loadStatusEnv(env, c)
	loadAnomalyEnv(env, c)
	loadHealthEnv(env, c) // drain.go
	env.URL("PYROSCOPE_SERVER_ADDRESS", "an absolute URL such as http://pyroscope:4040", &c.pyroscopeAddr)
	c.pyroscopeUser = getenv("PYROSCOPE_BASIC_AUTH_USER")
	c.pyroscopePassword = getenv("PYROSCOPE_BASIC_AUTH_PASSWORD")
	loadProfilingEnv(env, c)

	errs := []error{env.Err()}
	// Options last: they win.
	for _, o := range opts {
		if o != nil {
			errs = append(errs, applyOption(o, c))
		}
	}
	errs = append(errs, c.checkMetrics(), c.checkLogs())
	if c.serviceName == "" {
		c.serviceName = defaultServiceName()
	}
	if c.logWriter == nil {
		c.logWriter = io.Discard
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// loadResourceEnv reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME.
func loadResourceEnv(env *envconfig.Env, c *config) {
	if v := env.Raw("OTEL_RESOURCE_ATTRIBUTES"); strings.TrimSpace(v) != "" {
		kvs, err := parseResourceAttributes(v)
		if err != nil {
			env.Bad("OTEL_RESOURCE_ATTRIBUTES", v, "comma-separated key=value pairs, values percent-encoded", err)
		}
		c.resourceAttrs = kvs
		for _, kv := range kvs {
			switch kv.key {
			case "service.name":
				c.serviceName = kv.value
			case "service.version":
				c.serviceVersion = kv.value
			case "deployment.environment", "deployment.environment.name":
				c.environment = kv.value
			}
		}
	}
	if v := env.Get("OTEL_SERVICE_NAME"); v != "" {
		c.serviceName = v
	}
}

// loadAdminEnv reads the admin listener, its token, the per-request debug
// token and the logging variables.
func loadAdminEnv(env *envconfig.Env, c *config) {
	if v := env.Get("OBSERVE_ADMIN_ADDR"); v != "" {
		switch {
		case v == "off":
			c.adminAddr = ""
		default:
			if err := checkListenAddr(v); err != nil {
				env.Bad("OBSERVE_ADMIN_ADDR", v, `host:port such as ":9464" or "127.0.0.1:9464", or "off"`, err)
			}
			c.adminAddr = v
		}
	}
	c.adminToken = env.Raw("OBSERVE_ADMIN_TOKEN")
	c.debugToken = env.Raw("OBSERVE_DEBUG_TOKEN")
	if c.debugToken != "" && c.debugToken == c.adminToken {
		env.Secret("OBSERVE_DEBUG_TOKEN", "a secret of its own, not OBSERVE_ADMIN_TOKEN", errors.New("same as the admin token"))
	}

	if v := env.Get("OBSERVE_LOG_LEVEL"); v != "" {
		l, err := logging.ParseLevel(v)
		if err != nil {
			env.Bad("OBSERVE_LOG_LEVEL", v, "debug, info, warn, error", nil)
		}
		c.logLevel = l
	}
	if v := strings.ToLower(env.Get("OBSERVE_LOG_FORMAT")); v != "" {
		switch v {
		case "json", "text":
			c.logFormat = v
		default:
			env.Bad("OBSERVE_LOG_FORMAT", v, "json, text", nil)
		}
	}
	env.Switch("OBSERVE_ACCESS_LOG", &c.accessLog)
	var buffered bool
	if env.Switch("OBSERVE_LOG_BUFFER", &buffered) {
		c.logBuffer = "off"
		if buffered {
			c.logBuffer = "on"
		}
	}
}

// loadRedactEnv reads OBSERVE_REDACT_KEYS and OBSERVE_REDACT_HASH_KEY.
func loadRedactEnv(env *envconfig.Env, c *config) {
	if v := env.Raw("OBSERVE_REDACT_KEYS"); strings.TrimSpace(v) != "" {
		for _, k := range strings.Split(v, ",") {
			k = strings.TrimSpace(k)
			if k == "" {
				continue
			}
			if strings.ContainsAny(k, "=\"\n") {
				env.Bad("OBSERVE_REDACT_KEYS", v, "comma-separated key names", fmt.Errorf("bad key %q", k))
				continue
			}
			c.redactKeys = append(c.redactKeys, k)
		}
	}
	if v := env.Raw("OBSERVE_REDACT_HASH_KEY"); v != "" {
		if len(v) < 16 {
			env.Secret("OBSERVE_REDACT_HASH_KEY", "a secret of at least 16 bytes", errors.New("too short"))
		}
		c.redactHashKey = []byte(v)
	}
}

// applyOption runs a user option, turning a panic into an error so a bad
// option cannot crash the process at startup.
func applyOption(o Option, c *config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("observe: option panicked: %v", r)
		}
	}()
	o(c)
	return nil
}

func defaultServiceName() string {
	exe, err := os.Executable()
	if err != nil || exe == "" {
		return "unknown_service:go"
	}
	return "unknown_service:" + filepath.Base(exe)
}

func checkListenAddr(v string) error {
	i := strings.LastIndexByte(v, ':')
	if i < 0 {
		return errors.New("missing port")
	}
	port := v[i+1:]
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return errors.New("bad port")
	}
	return nil
}

// parseResourceAttributes parses the OTEL_RESOURCE_ATTRIBUTES W3C-baggage-like
// list: key1=value1,key2=value2 with percent-encoded values.
func parseResourceAttributes(s string) ([]keyValue, error) {
	var out []keyValue
	err := envconfig.EachPair(s, func(part, k, v string, ok bool) error {
		if !ok || k == "" {
			return fmt.Errorf("pair %q is not key=value", part)
		}
		dv, err := url.PathUnescape(v)
		if err != nil {
			return fmt.Errorf("value of %q is not percent-encoded correctly", k)
		}
		out = append(out, keyValue{k, dv})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// loadTailEnv reads local tail sampling's settings (OTEL_TRACES_SAMPLER=
// observe_tail): the baseline ratio from OTEL_TRACES_SAMPLER_ARG, then
// OBSERVE_TAIL_LATENCY, OBSERVE_TAIL_ERRORS, OBSERVE_TAIL_MAX_SPANS and
// OBSERVE_TAIL_MAX_TRACES.
func loadTailEnv(env *envconfig.Env, arg string) *itracing.TailConfig {
	tc := &itracing.TailConfig{}
	var err error
	if tc.Baseline, err = itracing.ParseTailBaseline(arg); err != nil {
		env.Bad("OTEL_TRACES_SAMPLER_ARG", arg, itracing.TailBaselineAccepted, nil)
	}
	v := env.Get("OBSERVE_TAIL_LATENCY")
	if tc.Latency, tc.LatencyQuantile, err = itracing.ParseTailLatency(v); err != nil {
		env.Bad("OBSERVE_TAIL_LATENCY", v, itracing.TailLatencyAccepted, err)
	}
	v = env.Get("OBSERVE_TAIL_ERRORS")
	if tc.AnyError, err = itracing.ParseTailErrors(v); err != nil {
		env.Bad("OBSERVE_TAIL_ERRORS", v, itracing.TailErrorsAccepted, nil)
	}
	for _, m := range []struct {
		name string
		dst  *int
	}{{"OBSERVE_TAIL_MAX_SPANS", &tc.MaxSpans}, {"OBSERVE_TAIL_MAX_TRACES", &tc.MaxTraces}} {
		v = env.Get(m.name)
		if *m.dst, err = itracing.ParseTailMax(v); err != nil {
			env.Bad(m.name, v, itracing.TailMaxAccepted, nil)
		}
	}
	return tc
}
