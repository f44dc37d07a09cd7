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

// options maps a plan onto one exporter package's options.
type options[O any] struct {
	url, hostPort func(string) O
	insecure      func() O
	timeout       func(time.Duration) O
	headers       func(map[string]string) O
	gzip          func() O
	tls           func(*tls.Config) O  // grpc
	client        func(*http.Client) O // http
}

// build returns the options and, for HTTP, what closes the transport.
func build[O any](p plan, o options[O]) ([]O, func()) {
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

// exporterKind is how one signal's exporters are made: the options of its
// gRPC (G) and HTTP (H) exporter packages, their constructors, and the
// wrapper closing an HTTP exporter's transport on Shutdown.
type exporterKind[G, H, E any] struct {
	signal  signal
	grpc    options[G]
	newGRPC func(context.Context, ...G) (E, error)
	http    options[H]
	newHTTP func(context.Context, ...H) (E, error)
	wrap    func(E, func()) E
}

func (k exporterKind[G, H, E]) build(ctx context.Context, c Config) (E, error) {
	var none E
	p, err := resolve(c, k.signal)
	if err != nil {
		return none, err
	}
	if p.grpc {
		opts, _ := build(p, k.grpc)
		return k.newGRPC(ctx, opts...)
	}
	opts, closeIdle := build(p, k.http)
	exp, err := k.newHTTP(ctx, opts...)
	if err != nil {
		return none, err
	}
	return k.wrap(exp, closeIdle), nil
}

// Traces returns the span exporter c describes. It never waits on the
// network: the exporter connects on the first export.
func Traces(ctx context.Context, c Config) (sdktrace.SpanExporter, error) {
	return exporterKind[otlptracegrpc.Option, otlptracehttp.Option, sdktrace.SpanExporter]{
		signal: traces,
		grpc: options[otlptracegrpc.Option]{
			url: otlptracegrpc.WithEndpointURL, hostPort: otlptracegrpc.WithEndpoint,
			insecure: otlptracegrpc.WithInsecure, timeout: otlptracegrpc.WithTimeout, headers: otlptracegrpc.WithHeaders,
			gzip: func() otlptracegrpc.Option { return otlptracegrpc.WithCompressor("gzip") },
			tls: func(t *tls.Config) otlptracegrpc.Option {
				return otlptracegrpc.WithTLSCredentials(credentials.NewTLS(t))
			},
		},
		newGRPC: func(ctx context.Context, o ...otlptracegrpc.Option) (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, o...)
		},
		http: options[otlptracehttp.Option]{
			url: otlptracehttp.WithEndpointURL, hostPort: otlptracehttp.WithEndpoint,
			insecure: otlptracehttp.WithInsecure, timeout: otlptracehttp.WithTimeout, headers: otlptracehttp.WithHeaders,
			gzip:   func() otlptracehttp.Option { return otlptracehttp.WithCompression(otlptracehttp.GzipCompression) },
			client: otlptracehttp.WithHTTPClient,
		},
		newHTTP: func(ctx context.Context, o ...otlptracehttp.Option) (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, o...)
		},
		wrap: func(e sdktrace.SpanExporter, closeIdle func()) sdktrace.SpanExporter {
			return spanExporter{e, closeIdle}
		},
	}.build(ctx, c)
}

// Metrics returns the metric exporter c describes. It never waits on the
// network.
func Metrics(ctx context.Context, c Config) (sdkmetric.Exporter, error) {
	return exporterKind[otlpmetricgrpc.Option, otlpmetrichttp.Option, sdkmetric.Exporter]{
		signal: metrics,
		grpc: options[otlpmetricgrpc.Option]{
			url: otlpmetricgrpc.WithEndpointURL, hostPort: otlpmetricgrpc.WithEndpoint,
			insecure: otlpmetricgrpc.WithInsecure, timeout: otlpmetricgrpc.WithTimeout, headers: otlpmetricgrpc.WithHeaders,
			gzip: func() otlpmetricgrpc.Option { return otlpmetricgrpc.WithCompressor("gzip") },
			tls: func(t *tls.Config) otlpmetricgrpc.Option {
				return otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(t))
			},
		},
		newGRPC: func(ctx context.Context, o ...otlpmetricgrpc.Option) (sdkmetric.Exporter, error) {
			return otlpmetricgrpc.New(ctx, o...)
		},
		http: options[otlpmetrichttp.Option]{
			url: otlpmetrichttp.WithEndpointURL, hostPort: otlpmetrichttp.WithEndpoint,
			insecure: otlpmetrichttp.WithInsecure, timeout: otlpmetrichttp.WithTimeout, headers: otlpmetrichttp.WithHeaders,
			gzip:   func() otlpmetrichttp.Option { return otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression) },
			client: otlpmetrichttp.WithHTTPClient,
		},
		newHTTP: func(ctx context.Context, o ...otlpmetrichttp.Option) (sdkmetric.Exporter, error) {
			return otlpmetrichttp.New(ctx, o...)
		},
		wrap: func(e sdkmetric.Exporter, closeIdle func()) sdkmetric.Exporter { return metricExporter{e, closeIdle} },
	}.build(ctx, c)
}

// Logs returns the log record exporter c describes. It never waits on the
// network.
func Logs(ctx context.Context, c Config) (sdklog.Exporter, error) {
	return exporterKind[otlploggrpc.Option, otlploghttp.Option, sdklog.Exporter]{
		signal: logs,
		grpc: options[otlploggrpc.Option]{
			url: otlploggrpc.WithEndpointURL, hostPort: otlploggrpc.WithEndpoint,
			insecure: otlploggrpc.WithInsecure, timeout: otlploggrpc.WithTimeout, headers: otlploggrpc.WithHeaders,
			gzip: func() otlploggrpc.Option { return otlploggrpc.WithCompressor("gzip") },
			tls:  func(t *tls.Config) otlploggrpc.Option { return otlploggrpc.WithTLSCredentials(credentials.NewTLS(t)) },
		},
		newGRPC: func(ctx context.Context, o ...otlploggrpc.Option) (sdklog.Exporter, error) {
			return otlploggrpc.New(ctx, o...)
		},
		http: options[otlploghttp.Option]{
			url: otlploghttp.WithEndpointURL, hostPort: otlploghttp.WithEndpoint,
			insecure: otlploghttp.WithInsecure, timeout: otlploghttp.WithTimeout, headers: otlploghttp.WithHeaders,
			gzip:   func() otlploghttp.Option { return otlploghttp.WithCompression(otlploghttp.GzipCompression) },
			client: otlploghttp.WithHTTPClient,
		},
		newHTTP: func(ctx context.Context, o ...otlploghttp.Option) (sdklog.Exporter, error) {
			return otlploghttp.New(ctx, o...)
		},
		wrap: func(e sdklog.Exporter, closeIdle func()) sdklog.Exporter { return logExporter{e, closeIdle} },
	}.build(ctx, c)
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
	defer e.closeIdle()
	return e.SpanExporter.Shutdown(ctx)
}

func (e metricExporter) Shutdown(ctx context.Context) error {
	defer e.closeIdle()
	return e.Exporter.Shutdown(ctx)
}

func (e logExporter) Shutdown(ctx context.Context) error {
	defer e.closeIdle()
	return e.Exporter.Shutdown(ctx)
}
