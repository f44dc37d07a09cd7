package envconfig

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"maps"
	"net/url"
	"os"
	"strings"

	"github.com/observekit/observe/internal/otlpexport"
)

// The signals, as they appear in the OTEL_EXPORTER_OTLP_<SIGNAL>_* names.
const (
	Traces  = "TRACES"
	Metrics = "METRICS"
	Logs    = "LOGS"
)

// OTLP reads the OTLP exporter section of one signal (Traces, Metrics or
// Logs), as the OpenTelemetry spec gives it:
//
//	OTEL_EXPORTER_OTLP_[<SIGNAL>_]PROTOCOL            grpc, http/protobuf (default)
//	OTEL_EXPORTER_OTLP_[<SIGNAL>_]ENDPOINT            the general one gets /v1/<signal> appended for http/protobuf
//	OTEL_EXPORTER_OTLP_[<SIGNAL>_]HEADERS             merged, the signal's keys winning
//	OTEL_EXPORTER_OTLP_[<SIGNAL>_]INSECURE            true, false
//	OTEL_EXPORTER_OTLP_[<SIGNAL>_]TIMEOUT             positive milliseconds (default 10000)
//	OTEL_EXPORTER_OTLP_[<SIGNAL>_]COMPRESSION         gzip, none
//	OTEL_EXPORTER_OTLP_[<SIGNAL>_]CERTIFICATE         PEM file of the CA(s) to trust
//	OTEL_EXPORTER_OTLP_[<SIGNAL>_]CLIENT_CERTIFICATE  PEM file of the client certificate (mTLS)
//	OTEL_EXPORTER_OTLP_[<SIGNAL>_]CLIENT_KEY          PEM file of its private key
//
// The signal's variable wins over the general one. Every malformed value is
// reported naming its variable, a malformed …_INSECURE included (the general
// one once, however many signals read it). Credentials written into the
// endpoint (http://user:password@collector) become an Authorization: Basic
// header unless the headers have one, and leave the endpoint.
//
// The certificate files are read only when readFiles is set (the signal
// exports over OTLP): a file meant for another signal is not this one's
// error.
func (e *Env) OTLP(signal string, readFiles bool) otlpexport.Config {
	general := func(x string) string { return "OTEL_EXPORTER_OTLP_" + x }
	specific := func(x string) string { return "OTEL_EXPORTER_OTLP_" + signal + "_" + x }
	both := func(x string) []string { return []string{general(x), specific(x)} }
	// pick: the signal's variable when set, else the general one.
	pick := func(x string) (string, string) {
		if v := e.Get(specific(x)); v != "" {
			return specific(x), v
		}
		return general(x), e.Get(general(x))
	}
	path := "/v1/" + strings.ToLower(signal)

	c := otlpexport.Config{Protocol: "http/protobuf", Timeout: otlpexport.DefaultTimeout}
	for _, name := range both("PROTOCOL") {
		switch v := e.Get(name); v {
		case "":
		case "grpc", "http/protobuf":
			c.Protocol = v
		case "http/json":
			e.Bad(name, v, "grpc, http/protobuf", errors.New("http/json is not supported by the Go OTLP exporters"))
		default:
			e.Bad(name, v, "grpc, http/protobuf", nil)
		}
	}
	if e.Get(specific("ENDPOINT")) != "" {
		e.URL(specific("ENDPOINT"), "an absolute URL such as http://collector:4318"+path, &c.Endpoint)
	} else if e.URL(general("ENDPOINT"), "an absolute URL such as http://collector:4318", &c.Endpoint) && c.Protocol == "http/protobuf" {
		c.Endpoint = strings.TrimSuffix(c.Endpoint, "/") + path
	}
	for _, name := range both("HEADERS") {
		e.headers(name, &c.Headers)
	}
	c.Endpoint, c.Headers = endpointCredentials(c.Endpoint, c.Headers)
	for _, name := range both("INSECURE") {
		e.Bool(name, &c.Insecure)
	}
	for _, name := range both("TIMEOUT") {
		e.Millis(name, &c.Timeout)
	}
	for _, name := range both("COMPRESSION") {
		v := c.Compression
		if e.Enum(name, &v, "gzip", "none") {
			c.Compression = strings.TrimPrefix(v, "none")
		}
	}
	if readFiles {
		caVar, caFile := pick("CERTIFICATE")
		certVar, certFile := pick("CLIENT_CERTIFICATE")
		keyVar, keyFile := pick("CLIENT_KEY")
		c.TLS = e.tlsFiles(caVar, caFile, certVar, certFile, keyVar, keyFile)
	}
	return c
}

// tlsFiles builds the TLS configuration from the PEM files named (nil when
// none is, or one is bad).
func (e *Env) tlsFiles(caVar, caFile, certVar, certFile, keyVar, keyFile string) *tls.Config {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	ok := true
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		pool := x509.NewCertPool()
		switch {
		case err != nil:
			e.Bad(caVar, caFile, "a readable PEM file of CA certificates", err)
			ok = false
		case !pool.AppendCertsFromPEM(pem):
			e.Bad(caVar, caFile, "a readable PEM file of CA certificates", errors.New("no certificate in it"))
			ok = false
		default:
			tc.RootCAs = pool
		}
	}
	switch {
	case certFile != "" && keyFile != "":
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			e.Bad(certVar, certFile, "PEM files of a client certificate and its key (also "+keyVar+")", err)
			ok = false
		} else {
			tc.Certificates = []tls.Certificate{pair}
		}
	case certFile != "":
		e.Bad(keyVar, "", "the client key's PEM file, required with "+certVar, nil)
		ok = false
	case keyFile != "":
		e.Bad(certVar, "", "the client certificate's PEM file, required with "+keyVar, nil)
		ok = false
	}
	if !ok {
		return nil
	}
	return tc
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
