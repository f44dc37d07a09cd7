// Package tracing builds the OpenTelemetry tracer provider observe installs:
// the sampler, the propagators, the exporter (OTLP over gRPC or HTTP, console,
// none, or the in-process store of recent spans) and the span processors.
//
// The root package observe reads the configuration and calls New; this
// package never reads the environment.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// InstrumentationName is the instrumentation scope of spans created by observe.
const InstrumentationName = "github.com/observekit/observe"

// Exporter names accepted in Config.Exporter.
const (
	ExporterOTLP    = "otlp"
	ExporterConsole = "console"
	ExporterNone    = "none"
	ExporterMemory  = "memory" // in-process store only, never printed
	ExporterCustom  = "custom" // Config.SpanExporter
)

// Config is what New needs. Zero values are sane defaults.
type Config struct {
	Resource *resource.Resource
	Sampler  sdktrace.Sampler // nil: parentbased_always_on

	Exporter     string // one of the Exporter* constants; "" means memory
	OTLP         OTLPConfig
	Console      io.Writer             // for ExporterConsole; nil: os.Stdout
	SpanExporter sdktrace.SpanExporter // for ExporterCustom

	// StoreSize bounds the in-process store of recent finished spans
	// (default 1000). The store is kept whatever the exporter.
	StoreSize int
	// QueueSize bounds the batch queue (default 2048); spans beyond it are
	// dropped and counted.
	QueueSize int
	// ExtraProcessors run after the store, before the exporter.
	ExtraProcessors []sdktrace.SpanProcessor
}

// OTLPConfig is the resolved OTLP exporter configuration.
type OTLPConfig struct {
	Protocol string            // "grpc" or "http/protobuf" (default)
	Endpoint string            // full URL; "" means the exporter's default (localhost)
	Headers  map[string]string // sent with every export
	Insecure bool              // plain text even for an https-less URL with grpc
	Timeout  time.Duration     // per export
}

// Provider owns the SDK tracer provider and what hangs off it.
type Provider struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	store  *SpanStore
	abort  func()
}

// New builds a Provider. It never waits on the network: exporters connect
// lazily on the first export.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Sampler == nil {
		cfg.Sampler = sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
	if cfg.StoreSize <= 0 {
		cfg.StoreSize = 1000
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = sdktrace.DefaultMaxQueueSize
	}
	exp, err := newExporter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p := &Provider{store: NewSpanStore(cfg.StoreSize)}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSampler(cfg.Sampler),
		sdktrace.WithSpanProcessor(p.store),
	}
	if cfg.Resource != nil {
		opts = append(opts, sdktrace.WithResource(cfg.Resource))
	}
	for _, sp := range cfg.ExtraProcessors {
		opts = append(opts, sdktrace.WithSpanProcessor(sp))
	}
	p.abort = func() {}
	if exp != nil {
		ab := newAbortable(exp)
		p.abort = ab.abort
		exp = ab
		bsp := sdktrace.NewBatchSpanProcessor(exp,
			sdktrace.WithMaxQueueSize(cfg.QueueSize),
			sdktrace.WithBatchTimeout(time.Second),
		)
		opts = append(opts, sdktrace.WithSpanProcessor(bsp))
	}
	p.tp = sdktrace.NewTracerProvider(opts...)
	p.tracer = p.tp.Tracer(InstrumentationName)
	return p, nil
}

func newExporter(ctx context.Context, cfg Config) (sdktrace.SpanExporter, error) {
	switch cfg.Exporter {
	case "", ExporterMemory, ExporterNone:
		return nil, nil
	case ExporterCustom:
		if cfg.SpanExporter == nil {
			return nil, errors.New("tracing: custom exporter requested without a SpanExporter")
		}
		return cfg.SpanExporter, nil
	case ExporterConsole:
		w := cfg.Console
		if w == nil {
			w = os.Stdout
		}
		return stdouttrace.New(stdouttrace.WithWriter(w))
	case ExporterOTLP:
		return newOTLPExporter(ctx, cfg.OTLP)
	}
	return nil, fmt.Errorf("tracing: unknown exporter %q", cfg.Exporter)
}

func newOTLPExporter(ctx context.Context, c OTLPConfig) (sdktrace.SpanExporter, error) {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	switch c.Protocol {
	case "grpc":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithTimeout(c.Timeout)}
		if c.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(c.Endpoint))
		}
		if c.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		if len(c.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(c.Headers))
		}
		return otlptracegrpc.New(ctx, opts...)
	case "", "http/protobuf":
		opts := []otlptracehttp.Option{otlptracehttp.WithTimeout(c.Timeout)}
		if c.Endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(c.Endpoint))
		}
		if c.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		if len(c.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(c.Headers))
		}
		return otlptracehttp.New(ctx, opts...)
	}
	return nil, fmt.Errorf("tracing: unknown OTLP protocol %q (accepted: grpc, http/protobuf)", c.Protocol)
}

// TracerProvider returns the SDK provider.
func (p *Provider) TracerProvider() *sdktrace.TracerProvider { return p.tp }

// Tracer returns observe's own tracer (scope InstrumentationName).
func (p *Provider) Tracer() trace.Tracer { return p.tracer }

// Store returns the in-process store of recent finished spans.
func (p *Provider) Store() *SpanStore { return p.store }

// Shutdown flushes and stops every processor and exporter by ctx's deadline.
// Past the deadline, in-flight exports are aborted so nothing keeps running.
func (p *Provider) Shutdown(ctx context.Context) error {
	return shutdownBy(ctx, p.abort, p.tp.Shutdown)
}

// ForceFlush exports what is queued.
func (p *Provider) ForceFlush(ctx context.Context) error { return p.tp.ForceFlush(ctx) }

var current atomic.Pointer[Provider]

// SetCurrent makes p the provider instrumentation in this process uses (nil:
// none, instrumentation passes through). observe.Init calls it.
func SetCurrent(p *Provider) { current.Store(p) }

// Current returns the provider set by SetCurrent, or nil.
func Current() *Provider { return current.Load() }

// NewSampler builds one of the OTel spec's OTEL_TRACES_SAMPLER values with
// its argument.
func NewSampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("sampler argument %q is not a ratio between 0 and 1", arg)
		}
		return r, nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.TraceIDRatioBased(r), nil
	case "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	}
	return nil, fmt.Errorf("unknown sampler %q", name)
}

// IsSamplerName reports whether name is an accepted OTEL_TRACES_SAMPLER value.
func IsSamplerName(name string) bool {
	switch name {
	case "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio":
		return true
	}
	return false
}

// SamplerNames lists the accepted sampler names.
const SamplerNames = "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio"

// NewPropagator builds a composite propagator from OTEL_PROPAGATORS names:
// tracecontext, baggage, b3 (single header), b3multi, none.
func NewPropagator(names []string) (propagation.TextMapPropagator, error) {
	var ps []propagation.TextMapPropagator
	for _, n := range names {
		switch n {
		case "tracecontext":
			ps = append(ps, propagation.TraceContext{})
		case "baggage":
			ps = append(ps, propagation.Baggage{})
		case "b3":
			ps = append(ps, b3.New(b3.WithInjectEncoding(b3.B3SingleHeader)))
		case "b3multi":
			ps = append(ps, b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader)))
		case "none", "":
		default:
			return nil, fmt.Errorf("unknown propagator %q", n)
		}
	}
	return propagation.NewCompositeTextMapPropagator(ps...), nil
}
