package logging

import (
	"context"
	"time"

	"github.com/observekit/observe/internal/otlpexport"
	"go.opentelemetry.io/contrib/bridges/otelslog"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
)

// OTLPConfig configures log export over OTLP (OTEL_LOGS_EXPORTER=otlp).
type OTLPConfig struct {
	// Export is the OTLP exporter: endpoint (for http/protobuf the logs
	// URL, http://collector:4318/v1/logs; for grpc the collector's), protocol,
	// headers, timeout, TLS and compression, as for every signal. Its Timeout
	// also bounds one export, retries included (default 10s).
	Export   otlpexport.Config
	Resource *resource.Resource
	// Exporter replaces the OTLP exporter (tests, custom backends); Export
	// is then ignored but for its Timeout.
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
		exp, err = otlpexport.Logs(ctx, c.Export)
		if err != nil {
			return nil, err
		}
	}
	timeout := c.Export.Timeout
	if timeout <= 0 {
		timeout = otlpexport.DefaultTimeout
	}
	bp := newBatchProcessor(exp, c.ExportInterval, timeout)
	opts := []sdklog.LoggerProviderOption{sdklog.WithProcessor(bp)}
	if c.Resource != nil {
		opts = append(opts, sdklog.WithResource(c.Resource))
	}
	lp := sdklog.NewLoggerProvider(opts...)
	bp.convert = otelslog.NewHandler(scope, otelslog.WithLoggerProvider(lp))
	return &Provider{LoggerProvider: lp, batch: bp}, nil
}
