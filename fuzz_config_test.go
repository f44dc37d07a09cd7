package observe

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe/internal/envconfig"
	"github.com/observekit/observe/internal/logging"
)

// Fuzz targets for every parser of the configuration (the environment
// variables' values, whole environments through loadConfig) and for the
// admin request bodies through the admin handler. Seed corpora are under
// testdata/fuzz/; .ci/fuzz.sh runs each briefly.

// FuzzConfigParseResourceAttributes: OTEL_RESOURCE_ATTRIBUTES never panics
// the parser, and what it accepts survives a round trip.
func FuzzConfigParseResourceAttributes(f *testing.F) {
	for _, s := range []string{
		"service.name=checkout,deployment.environment=prod", "k=v%20with%20spaces", " a = b ,, c=d ",
		"k=", "novalue", "=v", "k=%zz", "k=v=w", "k=%E2%9C%93", ",", "k=\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kvs, err := parseResourceAttributes(s)
		if err != nil {
			return
		}
		var parts []string
		for _, kv := range kvs {
			if kv.key == "" || kv.key != strings.TrimSpace(kv.key) || strings.ContainsAny(kv.key, ",=") {
				t.Fatalf("accepted key %q", kv.key)
			}
			parts = append(parts, kv.key+"="+url.PathEscape(kv.value))
		}
		again, err := parseResourceAttributes(strings.Join(parts, ","))
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", strings.Join(parts, ","), err)
		}
		if len(again) != len(kvs) {
			t.Fatalf("round trip: %v became %v", kvs, again)
		}
		for i := range kvs {
			if again[i].key != kvs[i].key || again[i].value != kvs[i].value {
				t.Fatalf("round trip: %v became %v", kvs, again)
			}
		}
	})
}

// secretVariables hold credentials: their values never appear in an error.
var secretVariables = []string{
	"OBSERVE_ADMIN_TOKEN", "OBSERVE_DEBUG_TOKEN", "PYROSCOPE_BASIC_AUTH_PASSWORD", "OBSERVE_REDACT_HASH_KEY",
	"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	"OTEL_EXPORTER_OTLP_METRICS_HEADERS", "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
}

// knownVariables are the variables loadConfig reads; a fuzzed line "N=v"
// with a number N sets knownVariables[N % len], so mutating a digit moves a
// value to another variable.
var knownVariables = []string{
	"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
	"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS",
	"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_METRICS_HEADERS", "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
	"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_METRICS_INSECURE",
	"OTEL_EXPORTER_OTLP_LOGS_INSECURE", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
	"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "OTEL_TRACES_SAMPLER",
	"OTEL_TRACES_SAMPLER_ARG", "OTEL_PROPAGATORS", "OTEL_METRICS_EXPORTER", "OTEL_METRIC_EXPORT_INTERVAL",
	"OTEL_METRIC_EXPORT_TIMEOUT", "OTEL_LOGS_EXPORTER", "OBSERVE_ADMIN_ADDR", "OBSERVE_ADMIN_TOKEN",
	"OBSERVE_LOG_LEVEL", "OBSERVE_LOG_FORMAT", "OBSERVE_ACCESS_LOG", "OBSERVE_LOG_SAMPLING",
	"OBSERVE_LOG_MAX_VALUE_BYTES", "OBSERVE_REDACT_KEYS", "OBSERVE_REDACT_HASH_KEY", "OBSERVE_NATIVE_HISTOGRAMS",
	"OBSERVE_METRIC_SERIES_LIMIT", "OBSERVE_TAIL_LATENCY", "OBSERVE_TAIL_ERRORS", "OBSERVE_TAIL_MAX_SPANS",
	"OBSERVE_TAIL_MAX_TRACES", "PYROSCOPE_SERVER_ADDRESS", "PYROSCOPE_BASIC_AUTH_USER", "PYROSCOPE_BASIC_AUTH_PASSWORD",
	"OBSERVE_DEBUG_TOKEN", "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
	"OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
	"OBSERVE_LOG_BUFFER", "OBSERVE_DRAIN_DELAY", "KUBERNETES_SERVICE_HOST",
}

// parseEnv reads "NAME=value" lines (the fuzzer's environment); NAME may
// be a number, an index into knownVariables.
func parseEnv(s string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			continue
		}
		if n, err := strconv.ParseUint(k, 10, 16); err == nil {
			k = knownVariables[int(n)%len(knownVariables)]
		}
		env[k] = v
	}
	return env
}

// secretsOf returns the secret values of env: whole values of the token
// and passwords, and the value of every header entry.
func secretsOf(env map[string]string) []string {
	var out []string
	for _, name := range secretVariables {
		v, ok := env[name]
		if !ok {
			continue
		}
		if strings.HasSuffix(name, "_HEADERS") {
			for _, part := range strings.Split(v, ",") {
				if _, val, ok := strings.Cut(part, "="); ok {
					out = append(out, strings.TrimSpace(val))
				}
			}
			continue
		}
		out = append(out, strings.TrimSpace(v))
	}
	return out
}

// FuzzConfigLoad: whole environments through loadConfig (as Init reads
// them) never panic; every error is a *ConfigError naming a variable the
// environment set; no secret value is echoed; what is accepted is usable.
func FuzzConfigLoad(f *testing.F) {
	for _, s := range []string{
		"OTEL_SERVICE_NAME=checkout\nOTEL_RESOURCE_ATTRIBUTES=deployment.environment=prod,team=pay",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318\nOTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf\nOTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20s3cr3t-token",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317\nOTEL_EXPORTER_OTLP_PROTOCOL=grpc\nOTEL_TRACES_EXPORTER=otlp\nOTEL_METRICS_EXPORTER=prometheus,otlp\nOTEL_LOGS_EXPORTER=otlp",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://x/v1/traces\nOTEL_EXPORTER_OTLP_METRICS_ENDPOINT=http://m:1/v1/metrics\nOTEL_EXPORTER_OTLP_LOGS_ENDPOINT=http://l:2/v1/logs",
		"OTEL_EXPORTER_OTLP_HEADERS=broken-secret-value\nOTEL_EXPORTER_OTLP_LOGS_HEADERS=k=%zzsecret\nOTEL_EXPORTER_OTLP_METRICS_HEADERS=a b=secret",
		"OTEL_TRACES_SAMPLER=traceidratio\nOTEL_TRACES_SAMPLER_ARG=0.25\nOTEL_PROPAGATORS=tracecontext,baggage,b3,b3multi",
		"OTEL_TRACES_SAMPLER=observe_tail\nOTEL_TRACES_SAMPLER_ARG=0.01\nOBSERVE_TAIL_LATENCY=p99,750ms\nOBSERVE_TAIL_ERRORS=any\nOBSERVE_TAIL_MAX_SPANS=8192\nOBSERVE_TAIL_MAX_TRACES=2048",
		"OTEL_SDK_DISABLED=true\nOBSERVE_LOG_LEVEL=debug\nOBSERVE_LOG_FORMAT=text\nOBSERVE_ACCESS_LOG=off",
		"OBSERVE_ADMIN_ADDR=127.0.0.1:0\nOBSERVE_ADMIN_TOKEN=admin-secret-123\nOBSERVE_REDACT_KEYS=ssn,iban\nOBSERVE_REDACT_HASH_KEY=0123456789abcdef0123",
		"OBSERVE_REDACT_HASH_KEY=short-key\nOBSERVE_ADMIN_ADDR=nowhere\nOBSERVE_ADMIN_TOKEN=tok-secret-999",
		"PYROSCOPE_SERVER_ADDRESS=http://pyroscope:4040\nPYROSCOPE_BASIC_AUTH_USER=u\nPYROSCOPE_BASIC_AUTH_PASSWORD=pyro-secret-pass",
		"PYROSCOPE_SERVER_ADDRESS=pyroscope://u:pyro-secret-pass@host\nPYROSCOPE_BASIC_AUTH_PASSWORD=pyro-secret-pass",
		"OTEL_METRIC_EXPORT_INTERVAL=100\nOTEL_METRIC_EXPORT_TIMEOUT=-1\nOBSERVE_NATIVE_HISTOGRAMS=yes\nOBSERVE_METRIC_SERIES_LIMIT=0",
		"OBSERVE_LOG_SAMPLING=debug=0.1,info=0.5\nOBSERVE_LOG_MAX_VALUE_BYTES=0\nOTEL_EXPORTER_OTLP_TIMEOUT=abc\nOTEL_EXPORTER_OTLP_INSECURE=maybe",
		"OTEL_TRACES_EXPORTER=jaeger\nOTEL_METRICS_EXPORTER=statsd\nOTEL_LOGS_EXPORTER=syslog\nOTEL_PROPAGATORS=xray\nOTEL_EXPORTER_OTLP_PROTOCOL=http/json",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://user:url-secret-pass@[::1\nOTEL_RESOURCE_ATTRIBUTES=novalue",
		"4=http://c:4318\n8=grpc\n12=x-api-key=k3y-s3cr3t\n27=otlp\n30=otlp\n32=tok3n-s3cr3t\n40=1\n47=http://p:4040",
		"0=a\n1=b=c\n2=false\n3=console\n24=parentbased_traceidratio\n25=0.5\n26=b3\n33=warn\n34=json\n35=on",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		env := parseEnv(s)
		getenv := func(k string) string { return env[k] }
		c, err := loadConfig(getenv, nil)
		if err == nil {
			checkAccepted(t, c)
			return
		}
		if c != nil {
			t.Fatal("loadConfig returned a config along with an error")
		}
		text := err.Error()
		var leaves []error
		collectLeaves(err, &leaves)
		for _, e := range leaves {
			var ce *ConfigError
			if !errors.As(e, &ce) {
				t.Fatalf("error %T is not a *ConfigError: %v", e, e)
			}
			if ce.Variable == "" {
				t.Fatalf("ConfigError names no variable: %v", ce)
			}
			if _, set := env[ce.Variable]; !set {
				t.Fatalf("error names %s, which the environment does not set: %v\nenv: %q", ce.Variable, ce, s)
			}
			if !strings.Contains(ce.Error(), ce.Variable) {
				t.Fatalf("message does not name the variable: %v", ce)
			}
		}
		// Secrets: a secret may appear in the error only when it appears
		// anyway (in another variable's value, in a name, in the message
		// without the secret variables).
		without := map[string]string{}
		for k, v := range env {
			without[k] = v
		}
		for _, name := range secretVariables {
			delete(without, name)
		}
		var allowed strings.Builder
		if _, err2 := loadConfig(func(k string) string { return without[k] }, nil); err2 != nil {
			allowed.WriteString(err2.Error())
		}
		for k, v := range without {
			allowed.WriteString("\n" + k + "\n" + v)
		}
		for _, name := range secretVariables {
			allowed.WriteString("\n" + name)
			for _, part := range strings.Split(env[name], ",") {
				k, _, _ := strings.Cut(part, "=")
				allowed.WriteString("\n" + strings.TrimSpace(k)) // header names are not secret
			}
		}
		allowed.WriteString(`observe: invalid "<redacted>" (accepted: comma-separated key=value pairs, values percent-encoded) an entry is not key=value; value of header is not percent-encoded correctly; a secret of at least 16 bytes: too short`)
		for _, sec := range secretsOf(env) {
			if len(sec) < 4 || strings.Contains(allowed.String(), sec) {
				continue
			}
			if strings.Contains(text, sec) {
				t.Fatalf("error echoes the secret %q: %v", sec, err)
			}
		}
	})
}

func collectLeaves(err error, out *[]error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			collectLeaves(e, out)
		}
		return
	}
	*out = append(*out, err)
}

// checkAccepted: what loadConfig accepts, the signal packages can use.
func checkAccepted(t *testing.T, c *config) {
	t.Helper()
	switch c.tracing.otlp.Protocol {
	case "grpc", "http/protobuf":
	default:
		t.Fatalf("accepted protocol %q", c.tracing.otlp.Protocol)
	}
	switch c.tracesExporter {
	case "otlp", "console", "none", "memory":
	default:
		t.Fatalf("accepted traces exporter %q", c.tracesExporter)
	}
	if c.tracing.otlp.Endpoint != "" && envconfig.CheckEndpoint(c.tracing.otlp.Endpoint) != nil {
		t.Fatalf("accepted endpoint %q", c.tracing.otlp.Endpoint)
	}
	for k, v := range c.tracing.otlp.Headers {
		if k == "" || strings.ContainsAny(k+v, "\r\n") {
			t.Fatalf("accepted header %q: %q", k, v)
		}
	}
	if c.tracing.otlp.Timeout <= 0 || c.serviceName == "" || c.logWriter == nil {
		t.Fatalf("accepted timeout %v, service name %q", c.tracing.otlp.Timeout, c.serviceName)
	}
	if c.adminAddr != "" && checkListenAddr(c.adminAddr) != nil {
		t.Fatalf("accepted admin address %q", c.adminAddr)
	}
}

const fuzzAdminToken = "fuzz-admin-token-7Qx9"

// FuzzConfigAdminLogLevel: PUT /loglevel, through the admin handler, with
// any body: never a panic or a 5xx, a JSON answer, nothing changed unless
// it says 200, and never the token in the answer. (logging's
// FuzzParseLevelRequest fuzzes the body parser alone.)
func FuzzConfigAdminLogLevel(f *testing.F) {
	for _, s := range []string{
		`{"level":"debug"}`, `{"level":"warn","logger":"db.pool","ttl":"10m"}`, `{"level":"error","ttl":"1ns"}`,
		`{"level":"info","logger":""}`, `{"level":"loud"}`, `{"level":"debug","ttl":"-1s"}`, `{"level":"debug","ttl":"1000h"}`,
		`{"level":"debug","logger":"` + strings.Repeat("a", 200) + `"}`, `{"level":"debug"}{"level":"info"}`,
		`{"level":"debug","level":"info"}`, `[]`, `null`, ``, `{`, "{\"level\":\"\xff\"}", `{"level":"DEBUG"}`,
	} {
		f.Add([]byte(s))
	}
	cfg, err := loadConfig(func(string) string { return "" }, []Option{
		WithAdminAddr("off"), WithAdminToken(fuzzAdminToken), WithLogWriter(io.Discard), WithServiceName("fuzz"),
	})
	if err != nil {
		f.Fatal(err)
	}
	cfg.sdkDisabled = true // the admin endpoints are what is fuzzed
	o, err := start(context.Background(), cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = o.Shutdown(ctx)
	})
	h := o.AdminHandler()
	snapshot := func() string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/loglevel", nil))
		return rec.Body.String()
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		before := snapshot()
		req := httptest.NewRequest("PUT", "/loglevel", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+fuzzAdminToken)
		req.RemoteAddr = "10.0.0.1:1234"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%d: answer is not JSON: %q", rec.Code, rec.Body.String())
		}
		if strings.Contains(rec.Body.String(), fuzzAdminToken) {
			t.Fatalf("answer carries the token: %s", rec.Body.String())
		}
		switch rec.Code {
		case 200:
			// Back to the start, pending TTL reverts cancelled, so every
			// input meets the same state.
			req, err := logging.ParseLevelRequest(body)
			if err != nil {
				t.Fatalf("200 for a body the parser rejects: %v", err)
			}
			if req.Logger != "" {
				o.levels.Unset(req.Logger)
			}
			if _, err := o.levels.Set("", slog.LevelInfo, 0, nil); err != nil {
				t.Fatal(err)
			}
		case 400:
			if after := snapshot(); after != before {
				t.Fatalf("400 (%s), yet levels changed:\n%s\n→\n%s", rec.Body.String(), before, after)
			}
		default:
			t.Fatalf("PUT /loglevel %q: %d %s", body, rec.Code, rec.Body.String())
		}
	})
}
