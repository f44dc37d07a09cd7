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
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/observekit/observe/internal/otlpexport"
	"github.com/observekit/observe/internal/wiring"
	"go.opentelemetry.io/contrib/propagators/b3"
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
	exporterOTLP    = "otlp"
	exporterConsole = "console"
	exporterNone    = "none"
	exporterMemory  = "memory" // in-process store only, never printed
	exporterCustom  = "custom" // Config.SpanExporter
)

// Config is what New needs. Zero values are sane defaults.
type Config struct {
	Resource *resource.Resource
	Sampler  sdktrace.Sampler // nil: parentbased_always_on

	Exporter     string // one of the Exporter* constants; "" means memory
	OTLP         OTLPConfig
	Console      io.Writer             // for exporterConsole; nil: os.Stdout
	SpanExporter sdktrace.SpanExporter // for exporterCustom

	// StoreSize bounds the in-process store of recent finished spans
	// (default 1000). The store is kept whatever the exporter.
	StoreSize int
	// Batch tunes the bounded export queue (OTEL_BSP_* in the spec).
	Batch BatchConfig
	// QueueSize bounds the batch queue (default 2048); spans beyond it are
	// dropped and counted. Deprecated spelling of Batch.MaxQueueSize, which
	// wins when both are set.
	QueueSize int
	// ExtraProcessors run after the store, before the exporter.
	ExtraProcessors []sdktrace.SpanProcessor
	// Tail, when set, turns local tail sampling on in place of Sampler (see
	// TailSampler): kept spans reach the store, ExtraProcessors and the
	// exporter; Provider.Tail returns it.
	Tail *TailConfig

	// Redactor, when set, scrubs span and span-event attributes, status
	// messages and link attributes before they leave the process (exporter)
	// or are read from the in-process store. URL user info in url.full is
	// always replaced, with or without a Redactor. observe.Init passes the
	// process's redaction policy.
	Redactor Redactor

	// Logger receives the exporter's failures (rate limited); nil:
	// slog.Default() at the time of the failure.
	Logger *slog.Logger
}

// BatchConfig bounds the export queue. Zero values are the spec defaults.
type BatchConfig struct {
	MaxQueueSize       int           // default 2048
	MaxExportBatchSize int           // default 512
	ScheduleDelay      time.Duration // default 1s (the spec's 5s is long for interactive use)
	ExportTimeout      time.Duration // default 30s
}

// OTLPConfig is the resolved OTLP exporter configuration (endpoint,
// protocol, headers, timeout, TLS, compression), the same for every signal.
type OTLPConfig = otlpexport.Config

// Provider owns the SDK tracer provider and what hangs off it.
type Provider struct {
	tp        *sdktrace.TracerProvider
	tracer    trace.Tracer
	sdkTracer trace.Tracer // tracer before any WrapTracers
	store     *SpanStore
	// startAttrs: something may look at a span's attributes as it starts
	// (a sampler of unknown kind, an extra processor's OnStart).
	startAttrs bool
	// stopSampler stops jaeger_remote's polling (nil otherwise).
	stopSampler func(context.Context) error
	samplerOnce sync.Once
	batch       *batchProcessor // nil when nothing is exported
	redactor    Redactor
	tail        *TailSampler // nil unless Config.Tail
}

// New builds a Provider. It never waits on the network: exporters connect
// lazily on the first export.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Sampler == nil {
		cfg.Sampler = attributeBlindSampler{Sampler: sdktrace.ParentBased(sdktrace.AlwaysSample())}
	}
	if cfg.StoreSize <= 0 {
		cfg.StoreSize = 1000
	}
	if cfg.Batch.MaxQueueSize <= 0 {
		cfg.Batch.MaxQueueSize = cfg.QueueSize
	}
	if cfg.Exporter == exporterOTLP {
		// OTEL_EXPORTER_OTLP_TIMEOUT bounds a whole batch export, as the
		// spec says; the Go exporters apply it per attempt and keep
		// retrying (429, 503, RESOURCE_EXHAUSTED…) for up to a minute.
		t := cfg.OTLP.Timeout
		if t <= 0 {
			t = otlpexport.DefaultTimeout
		}
		if cfg.Batch.ExportTimeout <= 0 || t < cfg.Batch.ExportTimeout {
			cfg.Batch.ExportTimeout = t
		}
	}
	exp, err := newExporter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p := &Provider{store: newSpanStore(cfg.StoreSize), redactor: cfg.Redactor}
	// The tail sampler's head sampler and processors ignore attributes too.
	p.startAttrs = !attributeBlind(cfg.Sampler) || len(cfg.ExtraProcessors) > 0
	if b, ok := cfg.Sampler.(attributeBlindSampler); ok && b.remote != nil && cfg.Tail == nil {
		p.stopSampler = b.remote.start(cfg.Resource)
	}
	p.store.redactor = cfg.Redactor
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSampler(withEvidence(cfg.Sampler)), // anomalies: see evidence.go
		sdktrace.WithSpanProcessor(p.store),
	}
	if cfg.Resource != nil {
		opts = append(opts, sdktrace.WithResource(cfg.Resource))
	}
	for _, sp := range cfg.ExtraProcessors {
		opts = append(opts, sdktrace.WithSpanProcessor(sp))
	}
	if exp != nil {
		p.batch = newBatchProcessor(exp, cfg.Batch, cfg.Redactor, cfg.Logger)
		opts = append(opts, sdktrace.WithSpanProcessor(p.batch))
	}
	if cfg.Tail != nil {
		opts = append(opts, p.installTail(*cfg.Tail, cfg.ExtraProcessors)...)
	}
	p.tp = sdktrace.NewTracerProvider(opts...)
	p.tracer = p.tp.Tracer(InstrumentationName)
	p.sdkTracer = p.tracer
	return p, nil
}

func newExporter(ctx context.Context, cfg Config) (sdktrace.SpanExporter, error) {
	switch cfg.Exporter {
	case "", exporterMemory, exporterNone:
		return nil, nil
	case exporterCustom:
		if cfg.SpanExporter == nil {
			return nil, errors.New("tracing: custom exporter requested without a SpanExporter")
		}
		return cfg.SpanExporter, nil
	case exporterConsole:
		w := cfg.Console
		if w == nil {
			w = os.Stdout
		}
		return stdouttrace.New(stdouttrace.WithWriter(w))
	case exporterOTLP:
		return otlpexport.Traces(ctx, cfg.OTLP)
	}
	return nil, fmt.Errorf("tracing: unknown exporter %q", cfg.Exporter)
}

// TracerProvider returns the SDK provider.
func (p *Provider) TracerProvider() *sdktrace.TracerProvider { return p.tp }

// Tracer returns observe's own tracer (scope InstrumentationName).
func (p *Provider) Tracer() trace.Tracer { return p.tracer }

// TracerWrapped reports whether Tracer goes through a wrapper (WrapTracers),
// such as profiling's span↔profile links, which label a span's work with
// what is known when it starts: instrumentation then does the extra work of
// knowing more at start (the HTTP route, say).
func (p *Provider) TracerWrapped() bool { return p.tracer != p.sdkTracer }

// StartAttributesObserved reports whether anything looks at a span's
// attributes when it starts: a sampler not made by NewSampler, an extra span
// processor, or a wrapped tracer (TracerWrapped). When nothing does,
// instrumentation may hand the attributes it knows at the start over with
// those it learns at the end, in one copy: the finished span is the same,
// for less work on the request path.
func (p *Provider) StartAttributesObserved() bool { return p.startAttrs || p.TracerWrapped() }

// Store returns the in-process store of recent finished spans.
func (p *Provider) Store() *SpanStore { return p.store }

// Redactor returns the redaction policy spans are scrubbed with (nil: none).
func (p *Provider) Redactor() Redactor { return p.redactor }

// DroppedSpans reports how many sampled spans never reached the backend:
// the export queue was full, the provider was shut down, or the batch
// holding them failed to export. observe exports it as
// observe_spans_dropped_total.
func (p *Provider) DroppedSpans() uint64 {
	if p == nil || p.batch == nil {
		return 0
	}
	return p.batch.q.Dropped()
}

// ExportFailures reports how many export calls failed (each may have held
// many spans). observe exports it as
// observe_export_failures_total{signal="traces"}.
func (p *Provider) ExportFailures() uint64 {
	if p == nil || p.batch == nil {
		return 0
	}
	return p.batch.q.Failures()
}

// ExportedSpans reports how many spans the exporter accepted.
func (p *Provider) ExportedSpans() uint64 {
	if p == nil || p.batch == nil {
		return 0
	}
	return p.batch.q.Exported()
}

// Shutdown flushes and stops every processor and exporter by ctx's deadline.
// It is idempotent.
func (p *Provider) Shutdown(ctx context.Context) error {
	err := p.tp.Shutdown(ctx)
	if p.stopSampler != nil {
		p.samplerOnce.Do(func() { err = errors.Join(err, p.stopSampler(ctx)) })
	}
	return err
}

// ForceFlush exports what is queued, by ctx's deadline.
func (p *Provider) ForceFlush(ctx context.Context) error { return p.tp.ForceFlush(ctx) }

// current returns the provider observe.Init made current (wiring.Tracing),
// or nil: instrumentation then passes through.
func current() *Provider {
	p, _ := wiring.Tracing.Load().(*Provider)
	return p
}

// attributeBlindSampler marks the samplers NewSampler makes: none of them
// reads SamplingParameters.Attributes.
type attributeBlindSampler struct {
	sdktrace.Sampler
	remote *jaegerRemote // jaeger_remote's, which New starts
}

func attributeBlind(s sdktrace.Sampler) bool {
	_, ok := s.(attributeBlindSampler)
	return ok
}

// NewSampler builds one of the OTel spec's OTEL_TRACES_SAMPLER values with
// its argument.
//
// jaeger_remote and parentbased_jaeger_remote take the spec's argument
// "endpoint=URL,pollingIntervalMs=N,initialSamplingRate=R" (each optional)
// and fetch the service's strategies over HTTP from URL (default
// defaultJaegerRemoteEndpoint) once New has the sampler: NewSampler itself
// starts nothing. xray is not supported.
func NewSampler(name, arg string) (sdktrace.Sampler, error) {
	switch name {
	case "jaeger_remote", "parentbased_jaeger_remote":
		j, err := parseJaegerRemoteArg(arg)
		if err != nil {
			return nil, err
		}
		var s sdktrace.Sampler = j
		if name == "parentbased_jaeger_remote" {
			s = sdktrace.ParentBased(j)
		}
		return attributeBlindSampler{Sampler: s, remote: j}, nil
	}
	s, err := newSampler(name, arg)
	if err != nil {
		return nil, err
	}
	return attributeBlindSampler{Sampler: s}, nil
}

// SamplerArgAccepted says what OTEL_TRACES_SAMPLER_ARG the named sampler
// accepts, for error messages.
func SamplerArgAccepted(name string) string {
	switch name {
	case "jaeger_remote", "parentbased_jaeger_remote":
		return "endpoint=URL,pollingIntervalMs=N,initialSamplingRate=R (each optional)"
	case "traceidratio", "parentbased_traceidratio":
		return "a ratio between 0 and 1"
	}
	return "nothing (" + name + " takes no argument)"
}

func newSampler(name, arg string) (sdktrace.Sampler, error) {
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
	case "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio",
		"jaeger_remote", "parentbased_jaeger_remote":
		return true
	}
	return false
}

// SamplerNames lists the accepted sampler names.
const SamplerNames = "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio, jaeger_remote, parentbased_jaeger_remote"

// NewPropagator builds a composite propagator from OTEL_PROPAGATORS names:
// tracecontext, baggage, b3 (single header), b3multi, none. tracecontext
// is OpenTelemetry's W3C propagator with the header handling of the W3C
// conformance suite (several tracestate headers combined, a duplicated
// traceparent ignored; see w3c.go), passing all of its cases.
func NewPropagator(names []string) (propagation.TextMapPropagator, error) {
	var ps []propagation.TextMapPropagator
	for _, n := range names {
		switch n {
		case "tracecontext":
			ps = append(ps, traceContext{}) // w3c.go
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
