package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/testbackend"
	"go.uber.org/goleak"
)

// otlpTLSEnvVars are cleared before each TLS test, for every signal.
func otlpTLSClean(t *testing.T) {
	t.Helper()
	for _, v := range logsEnvVars {
		t.Setenv(v, "")
	}
	for _, sig := range []string{"", "TRACES_", "METRICS_", "LOGS_"} {
		for _, x := range []string{"ENDPOINT", "PROTOCOL", "HEADERS", "INSECURE", "TIMEOUT", "COMPRESSION", "CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"} {
			t.Setenv("OTEL_EXPORTER_OTLP_"+sig+x, "")
		}
	}
	t.Setenv("OBSERVE_ADMIN_ADDR", "off")
}

// otlpEmitAll makes one span, one log record and (always there) metrics,
// then shuts down, which flushes every signal. With failing set, it first
// waits (up to 15s) for observe_export_failures_total to count a failure of
// each signal, and returns those counts; else it returns the counts after
// Shutdown. It returns how long Shutdown took too.
func otlpEmitAll(t *testing.T, failing bool) (map[string]int, time.Duration) {
	t.Helper()
	obs, err := observe.Init(context.Background(), observe.WithServiceName("tls"), observe.WithLogWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	_, span := obs.Tracer("tls-test").Start(context.Background(), "over-tls")
	span.End()
	slog.Info("over tls")
	failures := func() map[string]int {
		rec := httptest.NewRecorder()
		obs.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		out := map[string]int{}
		for _, l := range strings.Split(rec.Body.String(), "\n") {
			for _, sig := range []string{"traces", "metrics", "logs"} {
				var n int
				if _, err := fmt.Sscanf(l, `observe_export_failures_total{signal="`+sig+`"} %d`, &n); err == nil {
					out[sig] = n
				}
			}
		}
		return out
	}
	var counted map[string]int
	if failing {
		testbackend.Eventually(15*time.Second, func() bool {
			counted = failures()
			return counted["traces"] > 0 && counted["metrics"] > 0 && counted["logs"] > 0
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	if err := obs.Shutdown(ctx); err != nil && ctx.Err() != nil {
		t.Fatalf("Shutdown ran out of time: %v", err)
	}
	took := time.Since(start)
	if !failing {
		counted = failures()
	}
	return counted, took
}

// TestOTLPEverySignalOverTLS: traces, metrics and logs, each over gRPC and
// HTTP, gzip-compressed, to a receiver with a certificate of a custom CA
// (OTEL_EXPORTER_OTLP_CERTIFICATE), then one that requires a client
// certificate (mTLS, given per signal: …_<SIGNAL>_CLIENT_CERTIFICATE/KEY),
// then with a CA that did not sign the receiver's certificate: an export
// failure counted for each signal, within the timeout, not a hang.
func TestOTLPEverySignalOverTLS(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	pki := testbackend.NewPKI(t)
	other := testbackend.NewPKI(t)
	for _, protocol := range []string{"grpc", "http/protobuf"} {
		for _, mode := range []string{"ca", "mtls", "wrong-ca"} {
			t.Run(protocol+"/"+mode, func(t *testing.T) {
				otlpTLSClean(t)
				rcv := testbackend.StartOTLP(t, protocol, pki.ServerTLS(mode == "mtls"))
				for k, v := range map[string]string{
					"OTEL_EXPORTER_OTLP_ENDPOINT":    rcv.URL,
					"OTEL_EXPORTER_OTLP_PROTOCOL":    protocol,
					"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
					"OTEL_EXPORTER_OTLP_CERTIFICATE": pki.CAFile,
					"OTEL_EXPORTER_OTLP_TIMEOUT":     "2000",
					"OTEL_TRACES_EXPORTER":           "otlp",
					"OTEL_METRICS_EXPORTER":          "prometheus,otlp",
					"OTEL_METRIC_EXPORT_INTERVAL":    "3600000",
					"OTEL_LOGS_EXPORTER":             "otlp",
				} {
					t.Setenv(k, v)
				}
				switch mode {
				case "mtls":
					for _, sig := range []string{"TRACES", "METRICS", "LOGS"} {
						t.Setenv("OTEL_EXPORTER_OTLP_"+sig+"_CLIENT_CERTIFICATE", pki.ClientCertFile)
						t.Setenv("OTEL_EXPORTER_OTLP_"+sig+"_CLIENT_KEY", pki.ClientKey)
					}
				case "wrong-ca":
					t.Setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", other.CAFile)
				}
				if mode == "wrong-ca" {
					t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "200")
				}
				failures, took := otlpEmitAll(t, mode == "wrong-ca")
				got := map[string]testbackend.OTLPExport{}
				for _, e := range rcv.Exports() {
					if e.Items > 0 {
						got[e.Signal] = e
					}
				}
				for _, sig := range []string{"traces", "metrics", "logs"} {
					e, ok := got[sig]
					if mode == "wrong-ca" {
						if ok || failures[sig] == 0 {
							t.Errorf("%s with a wrong CA: received %v, %d failures counted", sig, ok, failures[sig])
						}
						continue
					}
					if !ok || !e.Gzip || failures[sig] != 0 {
						t.Errorf("%s: received %v (%+v), %d failures", sig, ok, e, failures[sig])
					}
					if want := map[bool]string{true: pki.ClientCN}[mode == "mtls"]; e.ClientCN != want {
						t.Errorf("%s: client certificate %q, want %q", sig, e.ClientCN, want)
					}
				}
				// Each signal's retries end at its 2s timeout; they run in
				// parallel in Shutdown.
				if took > 8*time.Second {
					t.Errorf("Shutdown took %v", took)
				}
			})
		}
	}
}
