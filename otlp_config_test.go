package observe

import (
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe/internal/otlpexport"
)

// otlpSignals are the three signals with the variable that turns their
// OTLP export on and where loadConfig puts their section.
var otlpSignals = []struct {
	name, upper string
	on          map[string]string
	get         func(*config) otlpexport.Config
}{
	{"traces", "TRACES", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, func(c *config) otlpexport.Config { return c.tracing.otlp }},
	{"metrics", "METRICS", map[string]string{"OTEL_METRICS_EXPORTER": "otlp"}, func(c *config) otlpexport.Config { return c.metrics.otlp }},
	{"logs", "LOGS", map[string]string{"OTEL_LOGS_EXPORTER": "otlp"}, func(c *config) otlpexport.Config { return c.logs.otlp }},
}

// TestOTLPEnvPrecedenceEverySignal: each OTEL_EXPORTER_OTLP_* variable ×
// each signal: the general one applies alone; the signal's wins over it
// (headers merge, the signal's keys winning).
func TestOTLPEnvPrecedenceEverySignal(t *testing.T) {
	dir := t.TempDir()
	ca1, _, ca1Cert, _ := writeCert(t, dir, "ca1", true)
	ca2, _, ca2Cert, _ := writeCert(t, dir, "ca2", true)
	c1, k1, cert1, _ := writeCert(t, dir, "client1", false)
	c2, k2, cert2, _ := writeCert(t, dir, "client2", false)
	trusts := func(cfg otlpexport.Config, cert *x509.Certificate) bool {
		if cfg.TLS == nil || cfg.TLS.RootCAs == nil {
			return false
		}
		_, err := cert.Verify(x509.VerifyOptions{Roots: cfg.TLS.RootCAs})
		return err == nil
	}
	client := func(cfg otlpexport.Config, cert *x509.Certificate) bool {
		return cfg.TLS != nil && len(cfg.TLS.Certificates) == 1 && string(cfg.TLS.Certificates[0].Certificate[0]) == string(cert.Raw)
	}
	type check func(sig string, cfg otlpexport.Config) error
	expect := func(what string, got, want any) error {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("%s %v, want %v", what, got, want)
		}
		return nil
	}
	for _, v := range []struct {
		variable          string
		general, specific map[string]string // S: the signal's variable
		generalOnly, both check
	}{
		{
			variable: "PROTOCOL",
			general:  map[string]string{"PROTOCOL": "grpc"}, specific: map[string]string{"S_PROTOCOL": "http/protobuf"},
			generalOnly: func(_ string, c otlpexport.Config) error { return expect("protocol", c.Protocol, "grpc") },
			both:        func(_ string, c otlpexport.Config) error { return expect("protocol", c.Protocol, "http/protobuf") },
		},
		{
			variable: "ENDPOINT",
			general:  map[string]string{"ENDPOINT": "http://general:4318/"}, specific: map[string]string{"S_ENDPOINT": "https://specific:443/x"},
			generalOnly: func(sig string, c otlpexport.Config) error {
				return expect("endpoint", c.Endpoint, "http://general:4318/v1/"+sig)
			},
			both: func(_ string, c otlpexport.Config) error {
				return expect("endpoint", c.Endpoint, "https://specific:443/x")
			},
		},
		{
			variable: "HEADERS",
			general:  map[string]string{"HEADERS": "a=1,b=2"}, specific: map[string]string{"S_HEADERS": "b=3,c=4"},
			generalOnly: func(_ string, c otlpexport.Config) error {
				return expect("headers", c.Headers, map[string]string{"a": "1", "b": "2"})
			},
			both: func(_ string, c otlpexport.Config) error {
				return expect("headers", c.Headers, map[string]string{"a": "1", "b": "3", "c": "4"})
			},
		},
		{
			variable: "INSECURE",
			general:  map[string]string{"INSECURE": "true"}, specific: map[string]string{"S_INSECURE": "false"},
			generalOnly: func(_ string, c otlpexport.Config) error { return expect("insecure", c.Insecure, true) },
			both:        func(_ string, c otlpexport.Config) error { return expect("insecure", c.Insecure, false) },
		},
		{
			variable: "TIMEOUT",
			general:  map[string]string{"TIMEOUT": "2000"}, specific: map[string]string{"S_TIMEOUT": "3000"},
			generalOnly: func(_ string, c otlpexport.Config) error { return expect("timeout", c.Timeout, 2*time.Second) },
			both:        func(_ string, c otlpexport.Config) error { return expect("timeout", c.Timeout, 3*time.Second) },
		},
		{
			variable: "COMPRESSION",
			general:  map[string]string{"COMPRESSION": "gzip"}, specific: map[string]string{"S_COMPRESSION": "none"},
			generalOnly: func(_ string, c otlpexport.Config) error { return expect("compression", c.Compression, "gzip") },
			both:        func(_ string, c otlpexport.Config) error { return expect("compression", c.Compression, "") },
		},
		{
			variable: "CERTIFICATE",
			general:  map[string]string{"CERTIFICATE": ca1}, specific: map[string]string{"S_CERTIFICATE": ca2},
			generalOnly: func(_ string, c otlpexport.Config) error {
				return expect("trusts ca1, ca2", [2]bool{trusts(c, ca1Cert), trusts(c, ca2Cert)}, [2]bool{true, false})
			},
			both: func(_ string, c otlpexport.Config) error {
				return expect("trusts ca1, ca2", [2]bool{trusts(c, ca1Cert), trusts(c, ca2Cert)}, [2]bool{false, true})
			},
		},
		{
			variable: "CLIENT_CERTIFICATE and CLIENT_KEY",
			general:  map[string]string{"CLIENT_CERTIFICATE": c1, "CLIENT_KEY": k1}, specific: map[string]string{"S_CLIENT_CERTIFICATE": c2, "S_CLIENT_KEY": k2},
			generalOnly: func(_ string, c otlpexport.Config) error {
				return expect("client cert 1, 2", [2]bool{client(c, cert1), client(c, cert2)}, [2]bool{true, false})
			},
			both: func(_ string, c otlpexport.Config) error {
				return expect("client cert 1, 2", [2]bool{client(c, cert1), client(c, cert2)}, [2]bool{false, true})
			},
		},
	} {
		for _, sig := range otlpSignals {
			env := func(parts ...map[string]string) map[string]string {
				out := maps.Clone(sig.on)
				for _, p := range parts {
					for k, val := range p {
						k = strings.Replace(k, "S_", sig.upper+"_", 1)
						out["OTEL_EXPORTER_OTLP_"+k] = val
					}
				}
				return out
			}
			t.Run(v.variable+"/"+sig.name, func(t *testing.T) {
				for _, tc := range []struct {
					name  string
					env   map[string]string
					check check
				}{{"general", env(v.general), v.generalOnly}, {"both", env(v.general, v.specific), v.both}} {
					c, err := loadConfig(envOf(tc.env), nil)
					if err != nil {
						t.Fatalf("%s: %v", tc.name, err)
					}
					if err := tc.check(sig.name, sig.get(c)); err != nil {
						t.Errorf("%s %v: %v", tc.name, tc.env, err)
					}
				}
			})
		}
	}
}

// TestOTLPEnvMalformedEverySignal: a malformed value of any signal's
// variable is a ConfigError naming it, a malformed …_INSECURE included;
// a malformed general one is reported once, not once per signal.
func TestOTLPEnvMalformedEverySignal(t *testing.T) {
	on := map[string]string{"OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "otlp"}
	bad := map[string]string{
		"PROTOCOL": "http/json", "ENDPOINT": "ftp://x", "HEADERS": "novalue", "INSECURE": "maybe",
		"TIMEOUT": "-1", "COMPRESSION": "brotli", "CERTIFICATE": "/nonexistent.pem",
	}
	for _, prefix := range []string{"", "TRACES_", "METRICS_", "LOGS_"} {
		for x, value := range bad {
			name := "OTEL_EXPORTER_OTLP_" + prefix + x
			env := maps.Clone(on)
			env[name] = value
			_, err := loadConfig(envOf(env), nil)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Variable != name {
				t.Errorf("%s=%q: error %v does not name it first", name, value, err)
				continue
			}
			if n := strings.Count(err.Error(), name+"="); n != 1 {
				t.Errorf("%s reported %d times: %v", name, n, err)
			}
		}
	}
}

// The debug token is a secret of its own: equal to the admin token, it would
// make every public endpoint accept the admin token.
func TestDebugTokenMustNotBeTheAdminToken(t *testing.T) {
	_, err := loadConfig(envOf(map[string]string{"OBSERVE_ADMIN_TOKEN": "same-s3cret-123", "OBSERVE_DEBUG_TOKEN": "same-s3cret-123"}), nil)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Variable != "OBSERVE_DEBUG_TOKEN" || strings.Contains(err.Error(), "same-s3cret") {
		t.Fatalf("error %v", err)
	}
	c, err := loadConfig(envOf(map[string]string{"OBSERVE_ADMIN_TOKEN": "admin-s3cret-123", "OBSERVE_DEBUG_TOKEN": "debug-s3cret-456"}), nil)
	if err != nil || c.debugToken != "debug-s3cret-456" || c.adminToken != "admin-s3cret-123" {
		t.Fatalf("%v %+v", err, c)
	}
}
