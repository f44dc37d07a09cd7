package observe

import (
	"encoding/base64"
	"strings"
	"testing"
)

// Credentials written into an OTLP endpoint URL are sent as basic auth (the
// OTLP exporters would drop them) and never kept in the endpoint.
func TestEndpointCredentialsBecomeBasicAuth(t *testing.T) {
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("otlp:p@ss:w rd"))
	for _, tc := range []struct {
		name     string
		env      map[string]string
		endpoint map[string]string // traces, metrics, logs
		auth     map[string]string // the Authorization header per signal ("": none)
	}{{
		name: "general endpoint, http/protobuf",
		env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otlp:p%40ss%3Aw%20rd@collector:4318",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
		},
		endpoint: map[string]string{"traces": "https://collector:4318/v1/traces", "metrics": "https://collector:4318/v1/metrics", "logs": "https://collector:4318/v1/logs"},
		auth:     map[string]string{"traces": basic, "metrics": basic, "logs": basic},
	}, {
		name: "per-signal endpoints, grpc",
		env: map[string]string{
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":  "http://otlp:p%40ss%3Aw%20rd@collector:4317",
			"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4317",
			"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT":    "http://otlp:p%40ss%3Aw%20rd@collector:4317",
			"OTEL_EXPORTER_OTLP_PROTOCOL":         "grpc",
		},
		endpoint: map[string]string{"traces": "http://collector:4317", "metrics": "http://collector:4317", "logs": "http://collector:4317"},
		auth:     map[string]string{"traces": basic, "metrics": "", "logs": basic},
	}, {
		name: "an Authorization header given wins",
		env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT":       "http://otlp:p%40ss%3Aw%20rd@collector:4318",
			"OTEL_EXPORTER_OTLP_PROTOCOL":       "http/protobuf",
			"OTEL_EXPORTER_OTLP_HEADERS":        "x-tenant=a",
			"OTEL_EXPORTER_OTLP_LOGS_HEADERS":   "authorization=Bearer%20logs",
			"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "Authorization=Bearer%20traces",
		},
		endpoint: map[string]string{"traces": "http://collector:4318/v1/traces", "metrics": "http://collector:4318/v1/metrics", "logs": "http://collector:4318/v1/logs"},
		auth:     map[string]string{"traces": "Bearer traces", "metrics": basic, "logs": "Bearer logs"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(envOf(tc.env), nil)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][2]any{
				"traces":  {c.tracing.otlp.Endpoint, c.tracing.otlp.Headers},
				"metrics": {c.metrics.otlp.Endpoint, c.metrics.otlp.Headers},
				"logs":    {c.logs.otlp.Endpoint, c.logs.otlp.Headers},
			}
			for sig, g := range got {
				if g[0] != tc.endpoint[sig] {
					t.Errorf("%s endpoint %q, want %q", sig, g[0], tc.endpoint[sig])
				}
				var auth []string
				for k, v := range g[1].(map[string]string) {
					if strings.EqualFold(k, "authorization") {
						auth = append(auth, v)
					}
				}
				switch {
				case tc.auth[sig] == "" && len(auth) > 0:
					t.Errorf("%s: Authorization %q, want none", sig, auth)
				case tc.auth[sig] != "" && (len(auth) != 1 || auth[0] != tc.auth[sig]):
					t.Errorf("%s: Authorization %q, want %q", sig, auth, tc.auth[sig])
				}
				if strings.Contains(g[0].(string), "p%40ss") {
					t.Errorf("%s endpoint keeps the password: %q", sig, g[0])
				}
			}
			if tc.name == "an Authorization header given wins" && c.metrics.otlp.Headers["x-tenant"] != "a" {
				t.Errorf("other headers lost: %v", c.metrics.otlp.Headers)
			}
		})
	}
}
