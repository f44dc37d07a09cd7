package observe

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/observekit/observe/logging"
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

	sdkDisabled bool

	tracesExporter  string // otlp | console | none | memory
	otlpProtocol    string // grpc | http/protobuf
	otlpEndpoint    string // the traces endpoint URL, resolved per the spec
	otlpHeaders     map[string]string
	otlpInsecure    bool
	otlpTimeout     time.Duration
	samplerName     string
	samplerArg      string
	propagators     []string
	spanExporter    sdktrace.SpanExporter // programmatic override (tests, custom backends)
	tail            *tracing.TailConfig   // local tail sampling (OTEL_TRACES_SAMPLER=observe_tail)
	tracing         tracingSettings       // TLS, compression, batch queue (tracing_config.go)
	spanStoreSize   int
	metricsExporter []string // prometheus, otlp (prometheus always serves /metrics unless none)
	logsExporter    string   // none | otlp
	metrics         metricsSettings

	logs logSettings // sampling, value size, OTLP push (logs_config.go)

	adminAddr  string // "" when off
	adminToken string

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

// WithTailSampling turns local tail sampling on (see tracing.TailSampler):
// every error and slow trace is kept, and tc.Baseline of the rest. It
// overrides OTEL_TRACES_SAMPLER and the OBSERVE_TAIL_* variables.
func WithTailSampling(tc tracing.TailConfig) Option {
	return func(c *config) { c.samplerName = tracing.TailSamplerName; c.tail = &tc }
}

// WithRedactKeys adds sensitive keys to the redaction policy, on top of the
// built-in list and OBSERVE_REDACT_KEYS.
func WithRedactKeys(keys ...string) Option {
	return func(c *config) { c.redactKeys = append(c.redactKeys, keys...) }
}

// WithAccessLog switches the per-request access log line on or off. It
// overrides OBSERVE_ACCESS_LOG.
func WithAccessLog(on bool) Option { return func(c *config) { c.accessLog = on } }

// ConfigError is returned by Init for a malformed setting. Variable names the
// environment variable (or option) at fault; the message lists what is accepted.
type ConfigError struct {
	Variable string
	Value    string
	Accepted string
	Err      error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "observe: invalid %s=%q", e.Variable, e.Value)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Accepted != "" {
		fmt.Fprintf(&b, " (accepted: %s)", e.Accepted)
	}
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

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
		spanStoreSize:   1000,
		otlpTimeout:     10 * time.Second,
	}
	var errs []error
	bad := func(variable, value, accepted string, err error) {
		// An endpoint may carry credentials (user:password@): not echoed.
		errs = append(errs, &ConfigError{Variable: variable, Value: redactUserinfo(value), Accepted: accepted, Err: err})
	}

	if v := strings.TrimSpace(getenv("OTEL_SDK_DISABLED")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("OTEL_SDK_DISABLED", v, "true, false", nil)
		}
		c.sdkDisabled = b
	}

	// Resource.
	if v := getenv("OTEL_RESOURCE_ATTRIBUTES"); strings.TrimSpace(v) != "" {
		kvs, err := parseResourceAttributes(v)
		if err != nil {
			bad("OTEL_RESOURCE_ATTRIBUTES", v, "comma-separated key=value pairs, values percent-encoded", err)
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
	if v := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); v != "" {
		c.serviceName = v
	}

	// Traces.
	endpoint := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
	tracesEndpoint := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
	c.otlpProtocol = "http/protobuf"
	for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			switch v {
			case "grpc", "http/protobuf":
				c.otlpProtocol = v
			case "http/json":
				bad(name, v, "grpc, http/protobuf", errors.New("http/json is not supported by the Go OTLP exporters"))
			default:
				bad(name, v, "grpc, http/protobuf", nil)
			}
		}
	}
	switch {
	case tracesEndpoint != "":
		if err := checkEndpoint(tracesEndpoint); err != nil {
			bad("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", tracesEndpoint, "an absolute URL such as http://collector:4318/v1/traces", err)
		}
		c.otlpEndpoint = tracesEndpoint
	case endpoint != "":
		if err := checkEndpoint(endpoint); err != nil {
			bad("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint, "an absolute URL such as http://collector:4318", err)
		}
		c.otlpEndpoint = endpoint
		if c.otlpProtocol == "http/protobuf" {
			c.otlpEndpoint = strings.TrimSuffix(endpoint, "/") + "/v1/traces"
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		if v := getenv(name); strings.TrimSpace(v) != "" {
			h, err := parseHeaders(v)
			if err != nil {
				// Headers carry credentials: never echo the value.
				errs = append(errs, secretConfigError(name, "comma-separated key=value pairs, values percent-encoded", err))
			}
			if c.otlpHeaders == nil {
				c.otlpHeaders = map[string]string{}
			}
			for k, val := range h {
				c.otlpHeaders[k] = val
			}
		}
	}
	c.otlpEndpoint, c.otlpHeaders = endpointCredentials(c.otlpEndpoint, c.otlpHeaders)
	for _, name := range []string{"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE"} {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(name, v, "true, false", nil)
			}
			c.otlpInsecure = b
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"} {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			ms, err := strconv.Atoi(v)
			if err != nil || ms <= 0 {
				bad(name, v, "a positive number of milliseconds", nil)
			} else {
				c.otlpTimeout = time.Duration(ms) * time.Millisecond
			}
		}
	}
	switch v := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); v {
	case "":
		if c.otlpEndpoint != "" {
			c.tracesExporter = "otlp"
		} else {
			c.tracesExporter = "memory"
		}
	case "otlp", "console", "none":
		c.tracesExporter = v
	default:
		bad("OTEL_TRACES_EXPORTER", v, "otlp, console, none", nil)
	}
	if v := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")); v != "" {
		c.samplerName = v
	}
	c.samplerArg = strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
	if c.samplerName == tracing.TailSamplerName {
		c.tail = loadTailEnv(getenv, c.samplerArg, bad)
	} else if _, err := tracing.NewSampler(c.samplerName, c.samplerArg); err != nil {
		if !tracing.IsSamplerName(c.samplerName) {
			bad("OTEL_TRACES_SAMPLER", c.samplerName, tracing.SamplerNames+", "+tracing.TailSamplerName, nil)
		} else {
			bad("OTEL_TRACES_SAMPLER_ARG", c.samplerArg, tracing.SamplerArgAccepted(c.samplerName), err)
		}
	}
	loadTracingEnv(getenv, c, bad)
	if v := strings.TrimSpace(getenv("OTEL_PROPAGATORS")); v != "" {
		c.propagators = nil
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			switch p {
			case "tracecontext", "baggage", "b3", "b3multi", "none":
				c.propagators = append(c.propagators, p)
			case "":
			default:
				bad("OTEL_PROPAGATORS", v, "tracecontext, baggage, b3, b3multi, none", fmt.Errorf("unknown propagator %q", p))
			}
		}
	}

	// Metrics and logs exporters.
	if v := strings.TrimSpace(getenv("OTEL_METRICS_EXPORTER")); v != "" {
		c.metricsExporter = nil
		for _, e := range strings.Split(v, ",") {
			e = strings.TrimSpace(e)
			switch e {
			case "prometheus", "otlp", "none":
				c.metricsExporter = append(c.metricsExporter, e)
			case "":
			default:
				bad("OTEL_METRICS_EXPORTER", v, "prometheus, otlp, none", fmt.Errorf("unknown exporter %q", e))
			}
		}
	}
	loadMetricsEnv(getenv, c, bad, func(variable, accepted string, err error) {
		errs = append(errs, secretConfigError(variable, accepted, err))
	})
	loadLogsEnv(getenv, c, bad, func(variable, accepted string, err error) {
		errs = append(errs, secretConfigError(variable, accepted, err))
	})
	switch v := strings.TrimSpace(getenv("OTEL_LOGS_EXPORTER")); v {
	case "":
	case "none", "otlp":
		c.logsExporter = v
	default:
		bad("OTEL_LOGS_EXPORTER", v, "none, otlp", nil)
	}

	// Admin.
	if v, ok := lookup(getenv, "OBSERVE_ADMIN_ADDR"); ok {
		switch {
		case v == "off":
			c.adminAddr = ""
		default:
			if err := checkListenAddr(v); err != nil {
				bad("OBSERVE_ADMIN_ADDR", v, `host:port such as ":9464" or "127.0.0.1:9464", or "off"`, err)
			}
			c.adminAddr = v
		}
	}
	c.adminToken = getenv("OBSERVE_ADMIN_TOKEN")

	// Logging.
	if v := strings.TrimSpace(getenv("OBSERVE_LOG_LEVEL")); v != "" {
		l, err := logging.ParseLevel(v)
		if err != nil {
			bad("OBSERVE_LOG_LEVEL", v, "debug, info, warn, error", nil)
		}
		c.logLevel = l
	}
	switch v := strings.ToLower(strings.TrimSpace(getenv("OBSERVE_LOG_FORMAT"))); v {
	case "":
	case "json", "text":
		c.logFormat = v
	default:
		bad("OBSERVE_LOG_FORMAT", v, "json, text", nil)
	}
	switch v := strings.ToLower(strings.TrimSpace(getenv("OBSERVE_ACCESS_LOG"))); v {
	case "":
	case "on", "true", "1":
		c.accessLog = true
	case "off", "false", "0":
		c.accessLog = false
	default:
		bad("OBSERVE_ACCESS_LOG", v, "on, off", nil)
	}

	// Redaction.
	if v := getenv("OBSERVE_REDACT_KEYS"); strings.TrimSpace(v) != "" {
		for _, k := range strings.Split(v, ",") {
			k = strings.TrimSpace(k)
			if k == "" {
				continue
			}
			if strings.ContainsAny(k, "=\"\n") {
				bad("OBSERVE_REDACT_KEYS", v, "comma-separated key names", fmt.Errorf("bad key %q", k))
				continue
			}
			c.redactKeys = append(c.redactKeys, k)
		}
	}
	if v := getenv("OBSERVE_REDACT_HASH_KEY"); v != "" {
		if len(v) < 16 {
			errs = append(errs, secretConfigError("OBSERVE_REDACT_HASH_KEY", "a secret of at least 16 bytes", errors.New("too short")))
		}
		c.redactHashKey = []byte(v)
	}

	// Profiling.
	if v := strings.TrimSpace(getenv("PYROSCOPE_SERVER_ADDRESS")); v != "" {
		if err := checkEndpoint(v); err != nil {
			bad("PYROSCOPE_SERVER_ADDRESS", v, "an absolute URL such as http://pyroscope:4040", err)
		}
		c.pyroscopeAddr = v
	}
	c.pyroscopeUser = getenv("PYROSCOPE_BASIC_AUTH_USER")
	c.pyroscopePassword = getenv("PYROSCOPE_BASIC_AUTH_PASSWORD")

	loadHealthEnv(getenv, c, bad) // drain.go

	// Options last: they win.
	for _, o := range opts {
		if o != nil {
			if err := applyOption(o, c); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := c.checkMetrics(); err != nil {
		errs = append(errs, err)
	}
	if err := c.checkLogs(); err != nil {
		errs = append(errs, err)
	}
	if c.serviceName == "" {
		c.serviceName = defaultServiceName()
	}
	if c.logWriter == nil {
		c.logWriter = io.Discard
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
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

func lookup(getenv func(string) string, name string) (string, bool) {
	v := strings.TrimSpace(getenv(name))
	return v, v != ""
}

func defaultServiceName() string {
	exe, err := os.Executable()
	if err != nil || exe == "" {
		return "unknown_service:go"
	}
	return "unknown_service:" + filepath.Base(exe)
}

func checkEndpoint(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("scheme must be http or https")
	}
	if u.Host == "" {
		return errors.New("missing host")
	}
	return nil
}

// endpointCredentials moves credentials written into an OTLP endpoint URL
// (http://user:password@collector:4318) into an Authorization: Basic header,
// as curl and Prometheus read such a URL: the OTLP exporters would drop
// them silently and every export would fail with 401. A header given in
// OTEL_EXPORTER_OTLP_*HEADERS wins. The endpoint returned has no userinfo,
// so no error or log line that names it can carry the password.
func endpointCredentials(endpoint string, headers map[string]string) (string, map[string]string) {
	u, err := url.Parse(endpoint)
	if err != nil || u.User == nil {
		return endpoint, headers
	}
	user := u.User.Username()
	pw, _ := u.User.Password()
	u.User = nil
	endpoint = u.String()
	for k := range headers {
		if strings.EqualFold(k, "authorization") {
			return endpoint, headers
		}
	}
	h := make(map[string]string, len(headers)+1)
	maps.Copy(h, headers)
	h["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
	return endpoint, h
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
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("pair %q is not key=value", part)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("value of %q is not percent-encoded correctly", k)
		}
		out = append(out, keyValue{k, dv})
	}
	return out, nil
}

// parseHeaders parses OTEL_EXPORTER_OTLP_HEADERS. Error messages never
// contain values (they are usually credentials).
func parseHeaders(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\r\n:") {
			return nil, errors.New("an entry is not key=value")
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil || strings.ContainsAny(dv, "\r\n") {
			return nil, fmt.Errorf("value of header %q is not percent-encoded correctly", k)
		}
		out[k] = dv
	}
	return out, nil
}

// loadTailEnv reads local tail sampling's settings (OTEL_TRACES_SAMPLER=
// observe_tail): the baseline ratio from OTEL_TRACES_SAMPLER_ARG, then
// OBSERVE_TAIL_LATENCY, OBSERVE_TAIL_ERRORS, OBSERVE_TAIL_MAX_SPANS and
// OBSERVE_TAIL_MAX_TRACES.
func loadTailEnv(getenv func(string) string, arg string, bad func(variable, value, accepted string, err error)) *tracing.TailConfig {
	tc := &tracing.TailConfig{}
	var err error
	if tc.Baseline, err = tracing.ParseTailBaseline(arg); err != nil {
		bad("OTEL_TRACES_SAMPLER_ARG", arg, tracing.TailBaselineAccepted, nil)
	}
	v := strings.TrimSpace(getenv("OBSERVE_TAIL_LATENCY"))
	if tc.Latency, tc.LatencyQuantile, err = tracing.ParseTailLatency(v); err != nil {
		bad("OBSERVE_TAIL_LATENCY", v, tracing.TailLatencyAccepted, err)
	}
	v = strings.TrimSpace(getenv("OBSERVE_TAIL_ERRORS"))
	if tc.AnyError, err = tracing.ParseTailErrors(v); err != nil {
		bad("OBSERVE_TAIL_ERRORS", v, tracing.TailErrorsAccepted, nil)
	}
	for _, m := range []struct {
		name string
		dst  *int
	}{{"OBSERVE_TAIL_MAX_SPANS", &tc.MaxSpans}, {"OBSERVE_TAIL_MAX_TRACES", &tc.MaxTraces}} {
		v = strings.TrimSpace(getenv(m.name))
		if *m.dst, err = tracing.ParseTailMax(v); err != nil {
			bad(m.name, v, tracing.TailMaxAccepted, nil)
		}
	}
	return tc
}
