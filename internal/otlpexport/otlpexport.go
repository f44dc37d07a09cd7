// Package otlpexport builds the OTLP exporters of the three signals (traces,
// metrics, logs) from one resolved configuration, so endpoint, protocol,
// headers, timeout, TLS (CA, client certificate), compression, insecure and
// proxy are applied the same way for every signal.
//
// The OpenTelemetry exporters also read OTEL_EXPORTER_OTLP_* themselves as
// defaults; every setting observe resolves is passed as an option, which
// wins, so what observe validated is what is used.
package otlpexport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // the "gzip" compressor of WithCompressor
)

// DefaultTimeout bounds one export when Config.Timeout is zero (the spec's
// OTEL_EXPORTER_OTLP_TIMEOUT default).
const DefaultTimeout = 10 * time.Second

// Config is the resolved OTLP exporter configuration of one signal.
type Config struct {
	Protocol string // "grpc" or "http/protobuf" (default)
	// Endpoint is a full URL: for http/protobuf the signal's URL
	// (http://collector:4318/v1/traces), for grpc the collector's
	// (http://collector:4317). "" means the spec's default; a value without
	// a scheme is host:port.
	Endpoint string
	Headers  map[string]string // sent with every export
	// Insecure forces plain text for an Endpoint without a scheme; an
	// http:// or https:// Endpoint decides by its scheme, as the spec says.
	Insecure    bool
	Timeout     time.Duration // per export (default DefaultTimeout)
	TLS         *tls.Config   // CA / client certificate; nil: system roots
	Compression string        // "gzip", or "" / "none"
}

// signal is what differs between the three signals.
type signal struct{ name, path string }

var (
	traces  = signal{"traces", "/v1/traces"}
	metrics = signal{"metrics", "/v1/metrics"}
	logs    = signal{"logs", "/v1/logs"}
)

// plan is a Config checked and resolved once, whatever the signal.
type plan struct {
	url      string // endpoint with a scheme ("" when hostPort is used)
	hostPort string // endpoint without a scheme
	insecure bool   // WithInsecure (host:port endpoints only)
	tls      *tls.Config
	headers  map[string]string
	timeout  time.Duration
	gzip     bool
	grpc     bool
}

func resolve(c Config, s signal) (plan, error) {
	p := plan{headers: c.Headers, timeout: c.Timeout}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	switch c.Compression {
	case "", "none":
	case "gzip":
		p.gzip = true
	default:
		return p, fmt.Errorf("unknown OTLP compression %q (accepted: gzip, none)", c.Compression)
	}
	switch c.Protocol {
	case "grpc":
		p.grpc = true
	case "", "http/protobuf":
	default:
		return p, fmt.Errorf("unknown OTLP protocol %q (accepted: grpc, http/protobuf)", c.Protocol)
	}
	switch {
	case strings.Contains(c.Endpoint, "://"):
		p.url = c.Endpoint
	case c.Endpoint != "":
		p.hostPort = c.Endpoint
		p.insecure = c.Insecure
	case p.grpc:
		p.url = "http://localhost:4317"
	default:
		p.url = "http://localhost:4318" + s.path
	}
	// Plain text never carries the TLS material (the exporters refuse both).
	if c.TLS != nil && !p.insecure && !strings.HasPrefix(p.url, "http://") {
		p.tls = c.TLS
	}
	return p, nil
}

// httpClient is the client of one HTTP exporter: its own transport, with
// the TLS material and the proxy from the environment (HTTPS_PROXY,
// NO_PROXY), closed when the exporter shuts down so no idle connection
// outlives it.
func (p plan) httpClient() (*http.Client, func()) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	tr.TLSClientConfig = p.tls
	return &http.Client{Transport: tr, Timeout: p.timeout}, tr.CloseIdleConnections
}

// options maps a plan onto one exporter package's options (O), and makes
// that package's exporter, as the signal's interface E.
type options[O, E any] struct {
	url, hostPort func(string) O
	insecure      func() O
	timeout       func(time.Duration) O
	headers       func(map[string]string) O
	gzip          func() O
	tls           func(*tls.Config) O  // grpc
	client        func(*http.Client) O // http
	newExporter   func(context.Context, ...O) (E, error)
}

// grpcOptions and httpOptions name one exporter package's option
// constructors, in the same order for every package; the tables below pass
// them as they are. X is the package's exporter type, which implements E.
func grpcOptions[E, O, X any](url, hostPort func(string) O, insecure func() O, timeout func(time.Duration) O,
	headers func(map[string]string) O, compressor func(string) O, creds func(credentials.TransportCredentials) O,
	newX func(context.Context, ...O) (X, error)) options[O, E] {
	return options[O, E]{url: url, hostPort: hostPort, insecure: insecure, timeout: timeout, headers: headers,
		gzip:        func() O { return compressor("gzip") },
		tls:         func(t *tls.Config) O { return creds(credentials.NewTLS(t)) },
		newExporter: as[E](newX)}
}

func httpOptions[E, O, C, X any](url, hostPort func(string) O, insecure func() O, timeout func(time.Duration) O,
	headers func(map[string]string) O, compression func(C) O, gzip C, client func(*http.Client) O,
	newX func(context.Context, ...O) (X, error)) options[O, E] {
	return options[O, E]{url: url, hostPort: hostPort, insecure: insecure, timeout: timeout, headers: headers,
		gzip:        func() O { return compression(gzip) },
		client:      client,
		newExporter: as[E](newX)}
}

// as turns an exporter package's New into one returning the signal's
// interface. Go cannot say "X implements E" between type parameters, so
// this is checked when the exporter is made (every signal and protocol is
// made in this package's tests): a mismatch is an error, never a panic.
func as[E, O, X any](newX func(context.Context, ...O) (X, error)) func(context.Context, ...O) (E, error) {
	return func(ctx context.Context, o ...O) (E, error) {
		var none E
		x, err := newX(ctx, o...)
		if err != nil {
			return none, err
		}
		e, ok := any(x).(E)
		if !ok {
			return none, fmt.Errorf("otlpexport: %T is not a %T exporter", x, (*E)(nil))
		}
		return e, nil
	}
}

// build returns the options and, for HTTP, what closes the transport.
func build[O, E any](p plan, o options[O, E]) ([]O, func()) {
	opts := []O{o.timeout(p.timeout)}
	if p.url != "" {
		opts = append(opts, o.url(p.url))
	} else {
		opts = append(opts, o.hostPort(p.hostPort))
	}
	if p.insecure {
		opts = append(opts, o.insecure())
	}
	if len(p.headers) > 0 {
		opts = append(opts, o.headers(p.headers))
	}
	if p.gzip {
		opts = append(opts, o.gzip())
	}
	closeIdle := func() {}
	if p.grpc {
		if p.tls != nil {
			opts = append(opts, o.tls(p.tls))
		}
	} else {
		var hc *http.Client
		hc, closeIdle = p.httpClient()
		opts = append(opts, o.client(hc))
	}
	return opts, closeIdle
}

// export makes the exporter c describes for signal s from its two exporter
// packages' options; an HTTP exporter is wrapped by closing, so that its
// transport's idle connections are closed when it shuts down.
func export[G, H, E any](ctx context.Context, c Config, s signal, g options[G, E], h options[H, E], closing func(E, func()) E) (E, error) {
	var none E
	p, err := resolve(c, s)
	if err != nil {
		return none, err
	}
	if p.grpc {
		opts, _ := build(p, g)
		return g.newExporter(ctx, opts...)
	}
	opts, closeIdle := build(p, h)
	exp, err := h.newExporter(ctx, opts...)
	if err != nil {
		return none, err
	}
	return closing(exp, closeIdle), nil
}

// The option constructors of each signal's gRPC and HTTP exporter packages.
var (
	traceGRPC  = grpcOptions[sdktrace.SpanExporter](otlptracegrpc.WithEndpointURL, otlptracegrpc.WithEndpoint, otlptracegrpc.WithInsecure, otlptracegrpc.WithTimeout, otlptracegrpc.WithHeaders, otlptracegrpc.WithCompressor, otlptracegrpc.WithTLSCredentials, otlptracegrpc.New)
	metricGRPC = grpcOptions[sdkmetric.Exporter](otlpmetricgrpc.WithEndpointURL, otlpmetricgrpc.WithEndpoint, otlpmetricgrpc.WithInsecure, otlpmetricgrpc.WithTimeout, otlpmetricgrpc.WithHeaders, otlpmetricgrpc.WithCompressor, otlpmetricgrpc.WithTLSCredentials, otlpmetricgrpc.New)
	logGRPC    = grpcOptions[sdklog.Exporter](otlploggrpc.WithEndpointURL, otlploggrpc.WithEndpoint, otlploggrpc.WithInsecure, otlploggrpc.WithTimeout, otlploggrpc.WithHeaders, otlploggrpc.WithCompressor, otlploggrpc.WithTLSCredentials, otlploggrpc.New)

	traceHTTP  = httpOptions[sdktrace.SpanExporter](otlptracehttp.WithEndpointURL, otlptracehttp.WithEndpoint, otlptracehttp.WithInsecure, otlptracehttp.WithTimeout, otlptracehttp.WithHeaders, otlptracehttp.WithCompression, otlptracehttp.GzipCompression, otlptracehttp.WithHTTPClient, otlptracehttp.New)
	metricHTTP = httpOptions[sdkmetric.Exporter](otlpmetrichttp.WithEndpointURL, otlpmetrichttp.WithEndpoint, otlpmetrichttp.WithInsecure, otlpmetrichttp.WithTimeout, otlpmetrichttp.WithHeaders, otlpmetrichttp.WithCompression, otlpmetrichttp.GzipCompression, otlpmetrichttp.WithHTTPClient, otlpmetrichttp.New)
	logHTTP    = httpOptions[sdklog.Exporter](otlploghttp.WithEndpointURL, otlploghttp.WithEndpoint, otlploghttp.WithInsecure, otlploghttp.WithTimeout, otlploghttp.WithHeaders, otlploghttp.WithCompression, otlploghttp.GzipCompression, otlploghttp.WithHTTPClient, otlploghttp.New)
)

// Traces returns the span exporter c describes. It never waits on the
// network: the exporter connects on the first export.
func Traces(ctx context.Context, c Config) (sdktrace.SpanExporter, error) {
	return export(ctx, c, traces, traceGRPC, traceHTTP, func(e sdktrace.SpanExporter, closeIdle func()) sdktrace.SpanExporter {
		return spanExporter{e, closeIdle}
	})
}

// Metrics returns the metric exporter c describes. It never waits on the
// network.
func Metrics(ctx context.Context, c Config) (sdkmetric.Exporter, error) {
	return export(ctx, c, metrics, metricGRPC, metricHTTP, func(e sdkmetric.Exporter, closeIdle func()) sdkmetric.Exporter { return metricExporter{e, closeIdle} })
}

// Logs returns the log record exporter c describes. It never waits on the
// network.
func Logs(ctx context.Context, c Config) (sdklog.Exporter, error) {
	return export(ctx, c, logs, logGRPC, logHTTP, func(e sdklog.Exporter, closeIdle func()) sdklog.Exporter { return logExporter{e, closeIdle} })
}

// The HTTP exporters, closing their transport's idle connections once shut
// down.
type (
	spanExporter struct {
		sdktrace.SpanExporter
		closeIdle func()
	}
	metricExporter struct {
		sdkmetric.Exporter
		closeIdle func()
	}
	logExporter struct {
		sdklog.Exporter
		closeIdle func()
	}
)

func (e spanExporter) Shutdown(ctx context.Context) error {
	return shutdown(ctx, e.SpanExporter, e.closeIdle)
}
func (e metricExporter) Shutdown(ctx context.Context) error {
	return shutdown(ctx, e.Exporter, e.closeIdle)
}
func (e logExporter) Shutdown(ctx context.Context) error {
	return shutdown(ctx, e.Exporter, e.closeIdle)
}

func shutdown(ctx context.Context, e interface{ Shutdown(context.Context) error }, closeIdle func()) error {
	defer closeIdle()
	return e.Shutdown(ctx)
}
