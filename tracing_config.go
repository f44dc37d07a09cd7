package observe

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/observekit/observe/redact"
	"github.com/observekit/observe/tracing"
)

// tracingSettings are the trace export settings beyond endpoint, protocol,
// headers, insecure and timeout (config.go): TLS material, compression and
// the batch queue, as the OpenTelemetry spec's variables give them.
type tracingSettings struct {
	tls         *tls.Config // nil: system roots, no client certificate
	compression string      // "gzip" or ""
	batch       tracing.BatchConfig
}

// loadTracingEnv reads
//
//	OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE         PEM file of the CA(s) to trust
//	OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE  PEM file of the client certificate (mTLS)
//	OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_KEY          PEM file of its private key
//	OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION         gzip, none
//	OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_EXPORT_TIMEOUT (ms), OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE
//
// the signal-specific variable winning over the general one, and reports a
// malformed value through bad, naming the variable.
func loadTracingEnv(getenv func(string) string, c *config, bad func(variable, value, accepted string, err error)) {
	pick := func(name string) (string, string) {
		specific := strings.Replace(name, "OTEL_EXPORTER_OTLP_", "OTEL_EXPORTER_OTLP_TRACES_", 1)
		if v := strings.TrimSpace(getenv(specific)); v != "" {
			return specific, v
		}
		return name, strings.TrimSpace(getenv(name))
	}

	if name, v := pick("OTEL_EXPORTER_OTLP_COMPRESSION"); v != "" {
		switch v {
		case "gzip":
			c.tracing.compression = "gzip"
		case "none":
		default:
			bad(name, v, "gzip, none", nil)
		}
	}

	caVar, caFile := pick("OTEL_EXPORTER_OTLP_CERTIFICATE")
	certVar, certFile := pick("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")
	keyVar, keyFile := pick("OTEL_EXPORTER_OTLP_CLIENT_KEY")
	if caFile != "" || certFile != "" || keyFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		ok := true
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			pool := x509.NewCertPool()
			switch {
			case err != nil:
				bad(caVar, caFile, "a readable PEM file of CA certificates", err)
				ok = false
			case !pool.AppendCertsFromPEM(pem):
				bad(caVar, caFile, "a readable PEM file of CA certificates", errors.New("no certificate in it"))
				ok = false
			default:
				tc.RootCAs = pool
			}
		}
		switch {
		case certFile != "" && keyFile != "":
			pair, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				bad(certVar, certFile, "PEM files of a client certificate and its key (also "+keyVar+")", err)
				ok = false
			} else {
				tc.Certificates = []tls.Certificate{pair}
			}
		case certFile != "":
			bad(keyVar, "", "the client key's PEM file, required with "+certVar, nil)
			ok = false
		case keyFile != "":
			bad(certVar, "", "the client certificate's PEM file, required with "+keyVar, nil)
			ok = false
		}
		if ok {
			c.tracing.tls = tc
		}
	}

	millis := func(name string, dst *time.Duration) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				bad(name, v, "a positive number of milliseconds", nil)
				return
			}
			*dst = time.Duration(n) * time.Millisecond
		}
	}
	count := func(name string, dst *int) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				bad(name, v, "a positive integer", nil)
				return
			}
			*dst = n
		}
	}
	b := &c.tracing.batch
	millis("OTEL_BSP_SCHEDULE_DELAY", &b.ScheduleDelay)
	millis("OTEL_BSP_EXPORT_TIMEOUT", &b.ExportTimeout)
	count("OTEL_BSP_MAX_QUEUE_SIZE", &b.MaxQueueSize)
	count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &b.MaxExportBatchSize)
	q := b.MaxQueueSize
	if q == 0 {
		q = 2048
	}
	if n := b.MaxExportBatchSize; n > q {
		bad("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", strconv.Itoa(n), fmt.Sprintf("at most OTEL_BSP_MAX_QUEUE_SIZE (%d)", q), nil)
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
