package observe

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/observekit/observe/internal/tracing"
	"go.opentelemetry.io/otel/attribute"
)

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir, name string, isCA bool) (certFile, keyFile string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           nil,
		IsCA:                  isCA,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile, cert, key
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestTracingEnvTLSCompressionBatch(t *testing.T) {
	dir := t.TempDir()
	ca, _, caCert, _ := writeCert(t, dir, "ca", true)
	cc, ck, _, _ := writeCert(t, dir, "client", false)
	c, err := loadConfig(envOf(map[string]string{
		"OTEL_EXPORTER_OTLP_CERTIFICATE":        "/nonexistent/ignored-because-the-traces-one-wins",
		"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": ca,
		"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": cc,
		"OTEL_EXPORTER_OTLP_CLIENT_KEY":         ck,
		"OTEL_EXPORTER_OTLP_COMPRESSION":        "gzip",
		"OTEL_BSP_SCHEDULE_DELAY":               "250",
		"OTEL_BSP_EXPORT_TIMEOUT":               "5000",
		"OTEL_BSP_MAX_QUEUE_SIZE":               "100",
		"OTEL_BSP_MAX_EXPORT_BATCH_SIZE":        "50",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	tc := c.tracing.otlp.TLS
	if tc == nil || tc.RootCAs == nil || len(tc.Certificates) != 1 {
		t.Fatalf("tls config %+v", tc)
	}
	if _, err := caCert.Verify(x509.VerifyOptions{Roots: tc.RootCAs}); err != nil {
		t.Errorf("CA not trusted: %v", err)
	}
	if c.tracing.otlp.Compression != "gzip" {
		t.Errorf("compression %q", c.tracing.otlp.Compression)
	}
	want := tracing.BatchConfig{ScheduleDelay: 250 * time.Millisecond, ExportTimeout: 5 * time.Second, MaxQueueSize: 100, MaxExportBatchSize: 50}
	if c.tracing.batch != want {
		t.Errorf("batch %+v, want %+v", c.tracing.batch, want)
	}
}

func TestTracingEnvErrorsNameTheVariable(t *testing.T) {
	dir := t.TempDir()
	cc, _, _, _ := writeCert(t, dir, "client", false)
	_, otherKey, _, _ := writeCert(t, dir, "other", false)
	notPEM := filepath.Join(dir, "not.pem")
	_ = os.WriteFile(notPEM, []byte("hello"), 0o600)
	cases := []struct {
		env  map[string]string
		name string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "brotli"}, "OTEL_EXPORTER_OTLP_COMPRESSION"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "zip"}, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"},
		{map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent.pem"}, "OTEL_EXPORTER_OTLP_CERTIFICATE"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": notPEM}, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"},
		{map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": cc}, "OTEL_EXPORTER_OTLP_CLIENT_KEY"},
		{map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_KEY": otherKey}, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"},
		{map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": cc, "OTEL_EXPORTER_OTLP_CLIENT_KEY": otherKey}, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"},
		{map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "soon"}, "OTEL_BSP_SCHEDULE_DELAY"},
		{map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "-1"}, "OTEL_BSP_MAX_QUEUE_SIZE"},
		{map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "10", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "20"}, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"},
	}
	for _, c := range cases {
		_, err := loadConfig(envOf(c.env), nil)
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%v: error %v does not name %s", c.env, err, c.name)
		}
	}
}

// TestTracingOTLPOverMutualTLS exports through Init to an HTTPS receiver
// that trusts only our client certificate, with our CA file.
func TestTracingOTLPOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	cc, ck, clientCert, _ := writeCert(t, dir, "client", false)
	var got atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 1 && r.TLS.PeerCertificates[0].Equal(clientCert) && r.Header.Get("Content-Encoding") == "gzip" {
			got.Add(1)
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	pool := x509.NewCertPool()
	pool.AddCert(clientCert)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(dir, "server-ca.pem")
	_ = os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)

	for k, v := range map[string]string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":    srv.URL + "/v1/traces",
		"OTEL_EXPORTER_OTLP_CERTIFICATE":        caFile,
		"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": cc,
		"OTEL_EXPORTER_OTLP_CLIENT_KEY":         ck,
		"OTEL_EXPORTER_OTLP_COMPRESSION":        "gzip",
		"OBSERVE_ADMIN_ADDR":                    "off",
	} {
		t.Setenv(k, v)
	}
	obs, err := Init(context.Background(), WithServiceName("mtls"), WithLogWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	_, span := obs.Tracer("test").Start(context.Background(), "over-mtls")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := obs.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got.Load() != 1 || obs.tracing.ExportFailures() != 0 {
		t.Fatalf("receiver accepted %d exports, %d failures", got.Load(), obs.tracing.ExportFailures())
	}
}

// Spans are scrubbed by the process's redaction policy before they leave
// (and when read from the in-process store).
func TestTracingRedactsThroughInit(t *testing.T) {
	t.Setenv("OBSERVE_ADMIN_ADDR", "off")
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	obs, err := Init(context.Background(), WithServiceName("redact"), WithLogWriter(io.Discard), WithRedactKeys("tenant_secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Shutdown(context.Background())
	if obs.tracing.Redactor() == nil {
		t.Fatal("no redaction policy on spans")
	}
	_, span := obs.Tracer("t").Start(context.Background(), "op")
	span.SetAttributes(
		attribute.String("db.password", "hunter2"),
		attribute.String("tenant_secret", "t0p"),
		attribute.String("url.full", "https://bob:pw@api.example/x?access_token=abc&q=1"),
		attribute.String("note", "mail bob@example.com"),
	)
	span.End()
	got := map[string]string{}
	for _, kv := range obs.tracing.Store().Spans()[0].Attributes() {
		got[string(kv.Key)] = kv.Value.AsString()
	}
	for k, secret := range map[string]string{"db.password": "hunter2", "tenant_secret": "t0p", "url.full": "abc", "note": "bob@example.com"} {
		if strings.Contains(got[k], secret) {
			t.Errorf("%s = %q still holds %q", k, got[k], secret)
		}
	}
	if strings.Contains(got["url.full"], "bob:pw") || !strings.Contains(got["url.full"], "q=1") {
		t.Errorf("url.full = %q", got["url.full"])
	}
}
