package testbackend

import (
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/proto"
)

// PKI is a test certificate authority with a server certificate for
// 127.0.0.1 and localhost and a client certificate, all written as PEM
// files.
type PKI struct {
	CAFile                    string // the CA's certificate
	ClientCertFile, ClientKey string // the client certificate (CN ClientCN) and its key
	ClientCN                  string
	server                    tls.Certificate
	pool                      *x509.CertPool
}

// NewPKI makes a CA and its server and client certificates under
// t.TempDir().
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "observe test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, server bool) (certPEM, keyPEM []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if server {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	}
	p := &PKI{ClientCN: "observe-test-client", pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	sc, sk := issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, true)
	if p.server, err = tls.X509KeyPair(sc, sk); err != nil {
		t.Fatal(err)
	}
	cc, ck := issue(3, p.ClientCN, x509.ExtKeyUsageClientAuth, false)
	write := func(name string, b []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	p.CAFile = write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	p.ClientCertFile = write("client.pem", cc)
	p.ClientKey = write("client-key.pem", ck)
	return p
}

// ServerTLS is the receiver's TLS configuration; with mutual set, a client
// certificate issued by the CA is required.
func (p *PKI) ServerTLS(mutual bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if mutual {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = p.pool
	}
	return c
}

// OTLPExport is one export request an OTLPReceiver decoded.
type OTLPExport struct {
	Signal   string // traces, metrics, logs
	Gzip     bool   // the request was gzip-compressed
	ClientCN string // the client certificate's common name ("" without one)
	Items    int    // spans, metric data points' metrics, or log records
}

// OTLPReceiver is an OTLP collector for the three signals over gRPC or
// HTTP (protobuf), plain or TLS: it decodes every request (gzip included)
// with the official OTLP types and records it.
type OTLPReceiver struct {
	URL string // http(s)://127.0.0.1:port

	mu      sync.Mutex
	exports []OTLPExport
}

// Exports returns what was received so far.
func (r *OTLPReceiver) Exports() []OTLPExport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]OTLPExport(nil), r.exports...)
}

func (r *OTLPReceiver) add(e OTLPExport) {
	r.mu.Lock()
	r.exports = append(r.exports, e)
	r.mu.Unlock()
}

// StartOTLP starts a receiver on 127.0.0.1 for protocol ("grpc" or
// "http/protobuf"), over TLS when tc is set; it stops with the test.
func StartOTLP(t testing.TB, protocol string, tc *tls.Config) *OTLPReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &OTLPReceiver{URL: "http://" + ln.Addr().String()}
	if tc != nil {
		r.URL = "https://" + ln.Addr().String()
	}
	if protocol == "grpc" {
		var opts []grpc.ServerOption
		if tc != nil {
			opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
		}
		sh := &compressionSeen{}
		opts = append(opts, grpc.StatsHandler(sh))
		srv := grpc.NewServer(opts...)
		coltracepb.RegisterTraceServiceServer(srv, &otlpTraces{r: r, sh: sh})
		colmetricspb.RegisterMetricsServiceServer(srv, &otlpMetrics{r: r, sh: sh})
		collogspb.RegisterLogsServiceServer(srv, &otlpLogs{r: r, sh: sh})
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(ln) }()
		t.Cleanup(func() { srv.Stop(); <-done })
		return r
	}
	mux := http.NewServeMux()
	handle := func(path, signal string, msg func() proto.Message, items func(proto.Message) int) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, req *http.Request) {
			var body io.Reader = req.Body
			gz := req.Header.Get("Content-Encoding") == "gzip"
			if gz {
				zr, err := gzip.NewReader(req.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				body = zr
			}
			b, err := io.ReadAll(io.LimitReader(body, 32<<20))
			m := msg()
			if err == nil {
				err = proto.Unmarshal(b, m)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			e := OTLPExport{Signal: signal, Gzip: gz, Items: items(m)}
			if req.TLS != nil && len(req.TLS.PeerCertificates) > 0 {
				e.ClientCN = req.TLS.PeerCertificates[0].Subject.CommonName
			}
			r.add(e)
			w.Header().Set("Content-Type", "application/x-protobuf")
		})
	}
	handle("/v1/traces", "traces", func() proto.Message { return &coltracepb.ExportTraceServiceRequest{} },
		func(m proto.Message) int { return traceItems(m.(*coltracepb.ExportTraceServiceRequest)) })
	handle("/v1/metrics", "metrics", func() proto.Message { return &colmetricspb.ExportMetricsServiceRequest{} },
		func(m proto.Message) int { return metricItems(m.(*colmetricspb.ExportMetricsServiceRequest)) })
	handle("/v1/logs", "logs", func() proto.Message { return &collogspb.ExportLogsServiceRequest{} },
		func(m proto.Message) int { return logItems(m.(*collogspb.ExportLogsServiceRequest)) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, TLSConfig: tc, ErrorLog: nil}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if tc != nil {
			_ = srv.ServeTLS(ln, "", "")
		} else {
			_ = srv.Serve(ln)
		}
	}()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return r
}

func traceItems(m *coltracepb.ExportTraceServiceRequest) (n int) {
	for _, rs := range m.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	return n
}

func metricItems(m *colmetricspb.ExportMetricsServiceRequest) (n int) {
	for _, rm := range m.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			n += len(sm.GetMetrics())
		}
	}
	return n
}

func logItems(m *collogspb.ExportLogsServiceRequest) (n int) {
	for _, rl := range m.GetResourceLogs() {
		for _, sl := range rl.GetScopeLogs() {
			n += len(sl.GetLogRecords())
		}
	}
	return n
}

// grpcExport records one gRPC export: its compression (from the stats
// handler) and the client certificate.
func grpcExport(ctx context.Context, r *OTLPReceiver, sh *compressionSeen, signal string, items int) {
	e := OTLPExport{Signal: signal, Items: items, Gzip: sh.gzip(ctx)}
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			e.ClientCN = ti.State.PeerCertificates[0].Subject.CommonName
		}
	}
	r.add(e)
}

// compressionSeen is a gRPC stats handler noting each call's compression.
type compressionSeen struct{}

type compressionKey struct{}

func (compressionSeen) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, compressionKey{}, new(string))
}

func (compressionSeen) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		if p, ok := ctx.Value(compressionKey{}).(*string); ok {
			*p = h.Compression
		}
	}
}

func (compressionSeen) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (compressionSeen) HandleConn(context.Context, stats.ConnStats) {}

func (compressionSeen) gzip(ctx context.Context) bool {
	p, ok := ctx.Value(compressionKey{}).(*string)
	return ok && strings.EqualFold(*p, "gzip")
}

type otlpTraces struct {
	coltracepb.UnimplementedTraceServiceServer
	r  *OTLPReceiver
	sh *compressionSeen
}

func (s *otlpTraces) Export(ctx context.Context, m *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	grpcExport(ctx, s.r, s.sh, "traces", traceItems(m))
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

type otlpMetrics struct {
	colmetricspb.UnimplementedMetricsServiceServer
	r  *OTLPReceiver
	sh *compressionSeen
}

func (s *otlpMetrics) Export(ctx context.Context, m *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	grpcExport(ctx, s.r, s.sh, "metrics", metricItems(m))
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

type otlpLogs struct {
	collogspb.UnimplementedLogsServiceServer
	r  *OTLPReceiver
	sh *compressionSeen
}

func (s *otlpLogs) Export(ctx context.Context, m *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	grpcExport(ctx, s.r, s.sh, "logs", logItems(m))
	return &collogspb.ExportLogsServiceResponse{}, nil
}
