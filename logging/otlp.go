package logging

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
)

// OTLPConfig configures log export over OTLP (OTEL_LOGS_EXPORTER=otlp).
type OTLPConfig struct {
	Protocol string // "http/protobuf" (default) or "grpc"
	// Endpoint is a full URL: for http/protobuf the logs URL
	// (http://collector:4318/v1/logs), for grpc the collector's
	// (http://collector:4317). "" means the spec's default.
	Endpoint string
	Headers  map[string]string // sent with every export
	// Insecure forces plain text for an Endpoint without a scheme; an
	// http:// or https:// Endpoint decides by its scheme.
	Insecure bool
	Timeout  time.Duration // per export, retries included (default 10s)
	Resource *resource.Resource
	// Exporter replaces the OTLP exporter (tests, custom backends); the
	// fields above are then ignored except Resource.
	Exporter sdklog.Exporter
	// ExportInterval is the batch processor's interval (default 1s).
	ExportInterval time.Duration
}

// Provider is an SDK LoggerProvider that batches records to an exporter
// through a bounded queue, counting the records it drops and the exports
// that fail.
type Provider struct {
	*sdklog.LoggerProvider
	batch *batchProcessor
}

// Shutdown exports what is queued, records handed over by the Handler
// included, and stops the exporter, by ctx's deadline. Records handed over
// while it runs are dropped and counted; after it, the export no longer
// asks for records (the lines still have them).
func (p *Provider) Shutdown(ctx context.Context) error {
	p.batch.closePending(ctx)
	err := p.LoggerProvider.Shutdown(ctx)
	// The SDK provider does not shut its processors down when ctx has
	// already ended (or ends while another call is in a processor): ours
	// is stopped all the same, or its worker would outlive Shutdown.
	if berr := p.batch.Shutdown(ctx); err == nil {
		err = berr
	}
	return err
}

// ExportFailures returns how many exports have failed since the provider was
// made (observe_export_failures_total{signal="logs"}).
func (p *Provider) ExportFailures() uint64 { return p.batch.failures() }

// Dropped returns how many records were dropped before export: the queue
// was full, the provider was shutting down, or their export failed.
func (p *Provider) Dropped() uint64 { return p.batch.dropped() }

// NewLoggerProvider returns an SDK LoggerProvider that batches records to
// the OTLP exporter c describes; pass it as Options.LoggerProvider and shut
// it down (which flushes) with the program. It never waits on the network,
// so an unreachable collector is not an error. The queue holds 2048
// records; failed exports and drops are logged at WARN (rate limited) by
// the Handler given it.
func NewLoggerProvider(ctx context.Context, c OTLPConfig) (*Provider, error) {
	exp := c.Exporter
	if exp == nil {
		var err error
		exp, err = newOTLPExporter(ctx, c)
		if err != nil {
			return nil, err
		}
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	bp := newBatchProcessor(exp, c.ExportInterval, timeout)
	opts := []sdklog.LoggerProviderOption{sdklog.WithProcessor(bp)}
	if c.Resource != nil {
		opts = append(opts, sdklog.WithResource(c.Resource))
	}
	lp := sdklog.NewLoggerProvider(opts...)
	bp.convert = otelslog.NewHandler(Scope, otelslog.WithLoggerProvider(lp))
	return &Provider{LoggerProvider: lp, batch: bp}, nil
}

func newOTLPExporter(ctx context.Context, c OTLPConfig) (sdklog.Exporter, error) {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	scheme := strings.Contains(c.Endpoint, "://")
	switch c.Protocol {
	case "grpc":
		opts := []otlploggrpc.Option{otlploggrpc.WithTimeout(c.Timeout)}
		switch {
		case scheme:
			opts = append(opts, otlploggrpc.WithEndpointURL(c.Endpoint))
		case c.Endpoint != "":
			opts = append(opts, otlploggrpc.WithEndpoint(c.Endpoint))
		default:
			opts = append(opts, otlploggrpc.WithEndpointURL("http://localhost:4317"))
		}
		if c.Insecure && !scheme && c.Endpoint != "" {
			opts = append(opts, otlploggrpc.WithInsecure())
		}
		if len(c.Headers) > 0 {
			opts = append(opts, otlploggrpc.WithHeaders(c.Headers))
		}
		return otlploggrpc.New(ctx, opts...)
	case "", "http/protobuf":
		// WithProxy(nil): otlploghttp (v0.23) otherwise gives every exporter
		// a transport of its own, never closed, and each Init/Shutdown
		// leaves an idle connection (and two goroutines) behind. Its shared
		// transport uses http.ProxyFromEnvironment all the same.
		opts := []otlploghttp.Option{otlploghttp.WithTimeout(c.Timeout), otlploghttp.WithProxy(nil)}
		switch {
		case scheme:
			opts = append(opts, otlploghttp.WithEndpointURL(c.Endpoint))
		case c.Endpoint != "":
			opts = append(opts, otlploghttp.WithEndpoint(c.Endpoint))
		default:
			opts = append(opts, otlploghttp.WithEndpointURL("http://localhost:4318/v1/logs"))
		}
		if c.Insecure && !scheme && c.Endpoint != "" {
			opts = append(opts, otlploghttp.WithInsecure())
		}
		if len(c.Headers) > 0 {
			opts = append(opts, otlploghttp.WithHeaders(c.Headers))
		}
		return otlploghttp.New(ctx, opts...)
	}
	return nil, fmt.Errorf("unknown OTLP protocol %q (accepted: grpc, http/protobuf)", c.Protocol)
}
