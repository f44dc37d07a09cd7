// Package logging is observe's slog pipeline. A record passes
//
//	levels (per logger, hierarchical, changeable at runtime with a TTL)
//	  → per-request debug (X-Observe-Debug, carried downstream in baggage)
//	  → sampling (per level; WARN and ERROR never; whole sampled traces kept)
//	  → redaction
//	  → fanout: the JSON (or text) line writer, with trace_id/span_id
//	            and, with a LoggerProvider, the OTel slog bridge (OTLP; the
//	            SDK takes the trace context from the same context). With
//	            observe's own Provider the bridge runs on the export worker:
//	            the caller resolves and queues the record, and converting
//	            it (several times the cost of the JSON line) is off its path.
//
// The same records, levels and redaction reach both writers. Level, debug
// and sampling decisions are taken in Enabled, before slog builds the
// record. How the stages are composed, and what it costs, is in
// docs/DESIGN.md.
//
// Line shape: time (RFC 3339, UTC), level, msg, service.name,
// service.version, deployment.environment, logger, trace_id, span_id,
// sample_rate, then the record's attributes; no key twice (a later
// attribute replaces an earlier one; an attribute named like a header field
// is written as "attr.<key>"). An error is written as its message, plus
// "<key>.stack" when it carries a stack trace.
//
// Lines are written one write per line, or with Options.Buffered in batches
// by a background writer (WARN and ERROR lines at once, in order; Close
// writes the rest).
package logging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	slogmulti "github.com/samber/slog-multi"
	"go.opentelemetry.io/contrib/bridges/otelslog"
	otellog "go.opentelemetry.io/otel/log"
)

// Redactor is the redaction policy the pipeline applies to every message and
// attribute, on every writer (redact.Policy implements it).
type Redactor interface {
	String(s string) string
	Attr(a slog.Attr) slog.Attr
}

// Options configure a Handler. The zero value writes JSON lines at INFO to
// io.Discard.
type Options struct {
	Writer io.Writer        // where lines go; default io.Discard
	Format string           // "json" (default) or "text"
	Levels *LevelController // default: a controller at INFO
	// Fields are written on every line right after msg, encoded once
	// (service.name, service.version, deployment.environment). Empty
	// string values are left out.
	Fields   []slog.Attr
	Redactor Redactor // nil: no redaction
	// MaxValueBytes truncates longer string values with a marker (default
	// 16 KiB; negative: no limit).
	MaxValueBytes int
	// Sampling keeps a fraction of DEBUG and INFO lines; the zero value
	// keeps everything.
	Sampling SampleRates
	// DebugToken enables per-request debug: a request whose X-Observe-Debug
	// header equals it is logged at DEBUG, downstream services included.
	// Empty: per-request debug is off and the header is ignored. It must
	// not be the admin token (the header reaches every public endpoint);
	// failed attempts are counted and rate limited (see DebugTokenFailures).
	DebugToken string
	// NoAccessLog turns off the access log line observe's middleware writes
	// per request (on by default).
	NoAccessLog bool
	// Buffered collects lines in memory and writes them in batches, from a
	// background writer every FlushInterval (default 100 ms) and whenever
	// 64 KiB have accumulated (the caller that fills the buffer waits for
	// the write: nothing is dropped). A WARN or ERROR line is written
	// before its log call returns, with every line before it, in order.
	// Close flushes and stops the background writer. A hard crash (os.Exit,
	// log.Fatal, SIGKILL, a fatal runtime error) loses the DEBUG and INFO
	// lines of the last interval at most. Off: one write per line.
	Buffered      bool
	FlushInterval time.Duration
	// LoggerProvider, when set, receives every record too, through the
	// OpenTelemetry slog bridge (OTLP export): after the same levels,
	// sampling and redaction as the lines.
	LoggerProvider otellog.LoggerProvider
	// Ring, when set, keeps a copy of every line that carries a trace_id
	// (see LineRing).
	Ring *LineRing
}

// scope is the instrumentation scope of records sent to the LoggerProvider.
const scope = "github.com/observekit/observe/logging"

// pipeline is what every Handler derived from one New shares.
type pipeline struct {
	levels    *LevelController
	sampler   *sampler // nil: no sampling
	debug     *debugVerifier
	accessLog bool
	redact    *redactStage // with export: redaction before the fanout; nil: the writers redact
	export    slog.Handler // cleaning stage → OTel slog bridge; nil: no export
	provider  otellog.LoggerProvider
}

// Handler is observe's slog.Handler: the head of the pipeline. Derive named
// loggers with WithName (or the package's Named).
type Handler struct {
	p    *pipeline
	name string
	lc   *levelCache  // the level for name, shared by handlers of that name
	w    *lineWriter  // the line writer, with this handler's attrs and groups
	x    slog.Handler // the export branch, likewise; nil without export
	ops  []op         // attrs and groups applied since New, to rebuild x in WithName
	next slog.Handler // stages → fanout(w, x)
}

// New returns the head of a pipeline configured by o.
func New(o Options) *Handler {
	if o.Levels == nil {
		o.Levels = NewLevelController(slog.LevelInfo)
	}
	p := &pipeline{
		levels:    o.Levels,
		debug:     newDebugVerifier(o.DebugToken),
		accessLog: !o.NoAccessLog,
	}
	p.sampler = newSampler(o.Sampling, p.debug)
	if o.LoggerProvider != nil && o.Redactor != nil {
		// Two writers: redact once, in a stage in front of the fanout, so
		// both get the same redacted record and the policy counts each
		// secret once. The writers themselves then do no redaction.
		p.redact = &redactStage{r: o.Redactor}
		o.Redactor = nil
	}
	h := &Handler{p: p, w: newLineWriter(&o), lc: &levelCache{}}
	if o.LoggerProvider != nil {
		x := &exportStage{
			maxValue: h.w.s.enc.maxValue,
			next:     otelslog.NewHandler(scope, otelslog.WithLoggerProvider(o.LoggerProvider)),
		}
		if prov, ok := o.LoggerProvider.(*Provider); ok && prov.batch.convert != nil {
			x.async = prov.batch
			x.owned = p.redact != nil
		}
		p.export = x
		h.x = p.export
		p.provider = o.LoggerProvider
	}
	h.compose()
	if prov, ok := o.LoggerProvider.(*Provider); ok {
		// The export's failures and drops are told in the lines (only).
		prov.batch.logger.Store(slog.New(h.WithName("observe.logs")))
	}
	return h
}

// compose builds next from the current writers: the stages in order, then
// the fanout. slog-multi's Pipe and Fanout return the writer itself when
// there is nothing to compose, so the plain JSON path has no wrapper.
func (h *Handler) compose() {
	var term slog.Handler = h.w
	if h.x != nil {
		term = &fanout{w: h.w, x: h.x}
	}
	var stages []slogmulti.Middleware
	if h.p.sampler != nil {
		stages = append(stages, h.p.sampler.stage)
	}
	if h.p.redact != nil {
		stages = append(stages, h.p.redact.stage)
	}
	h.next = slogmulti.Pipe(stages...).Handler(term)
}

// fanout hands each record to the line writer, then to the export branch.
// It is slog-multi's Fanout without the copies: neither writer keeps or
// changes the record it is given, so both get the same one, where Fanout
// clones the record for each (two copies of its attributes a line). A panic
// in either writer is recovered and returned as an error, as Fanout does,
// and the other writer still gets the record.
type fanout struct{ w, x slog.Handler }

func (f *fanout) Enabled(ctx context.Context, l slog.Level) bool {
	return f.w.Enabled(ctx, l) || f.x.Enabled(ctx, l)
}

func (f *fanout) Handle(ctx context.Context, r slog.Record) error {
	var errW, errX error
	if f.w.Enabled(ctx, r.Level) {
		errW = handleRecovered(f.w, ctx, r)
	}
	if f.x.Enabled(ctx, r.Level) {
		errX = handleRecovered(f.x, ctx, r)
	}
	if errW == nil {
		return errX
	}
	return errors.Join(errW, errX)
}

func (f *fanout) WithAttrs(as []slog.Attr) slog.Handler {
	return &fanout{w: f.w.WithAttrs(as), x: f.x.WithAttrs(as)}
}

func (f *fanout) WithGroup(name string) slog.Handler {
	return &fanout{w: f.w.WithGroup(name), x: f.x.WithGroup(name)}
}

func handleRecovered(h slog.Handler, ctx context.Context, r slog.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			if e, ok := v.(error); ok {
				err = fmt.Errorf("logging: handler panicked: %w", e)
			} else {
				err = fmt.Errorf("logging: handler panicked: %v", v)
			}
		}
	}()
	return h.Handle(ctx, r)
}

// Close writes the buffered lines and stops the background writer of a
// Buffered handler; later lines are written one by one. It applies to every
// handler derived from the same New, and is idempotent. Without Buffered it
// does nothing. It does not stop the OTLP export (its Provider does).
func (h *Handler) Close() error {
	if b := h.w.s.buf; b != nil {
		return b.Close()
	}
	return nil
}

// levels returns the level controller.
func (h *Handler) levels() *LevelController { return h.p.levels }

// loggerName returns the logger name ("" for the root logger).
func (h *Handler) loggerName() string { return h.name }

// AccessLog reports whether observe's middleware should write an access log
// line per request.
func (h *Handler) AccessLog() bool { return h.p.accessLog }

// Dropped returns how many records were dropped (observe_logs_dropped_total):
// those sampling left out (SampledOut) and, with a Provider, those the
// export dropped (queue full, or in a failed export). Records below the
// level are not counted: they were never wanted.
func (h *Handler) Dropped() uint64 {
	n := h.sampledOut()
	if d, ok := h.p.provider.(interface{ Dropped() uint64 }); ok {
		n += d.Dropped()
	}
	return n
}

// sampledOut returns how many records sampling has dropped since New.
func (h *Handler) sampledOut() uint64 {
	if h.p.sampler == nil {
		return 0
	}
	return h.p.sampler.dropped.Load()
}

// DroppedRecords is Dropped, under the name observe's self-telemetry asks for.
func (h *Handler) DroppedRecords() uint64 { return h.Dropped() }

// ExportFailures returns how many OTLP exports of log records have failed,
// when the LoggerProvider counts them (a Provider does), else 0.
func (h *Handler) ExportFailures() uint64 {
	if f, ok := h.p.provider.(interface{ ExportFailures() uint64 }); ok {
		return f.ExportFailures()
	}
	return 0
}

// WithName returns a handler for the named logger: its lines carry
// "logger":name and its level follows the controller's level for name.
// Attributes and groups of h are kept.
func (h *Handler) WithName(name string) *Handler {
	h2 := *h
	h2.name = name
	h2.lc = &levelCache{}
	h2.w = h.w.withName(name)
	if h.p.export != nil {
		x := h.p.export
		if name != "" {
			x = x.WithAttrs([]slog.Attr{slog.String("logger", name)})
		}
		for _, o := range h.ops {
			if o.group != "" {
				x = x.WithGroup(o.group)
			} else {
				x = x.WithAttrs(o.attrs)
			}
		}
		h2.x = x
	}
	h2.compose()
	return &h2
}

// Enabled reports whether a record at l is wanted: at or above the logger's
// level (and kept by sampling), or in a request marked for debug.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool {
	if l < h.level() {
		return debugActive.Load() > 0 && debugEnabled(ctx)
	}
	if h.p.sampler == nil || l >= slog.LevelWarn {
		return true
	}
	return h.next.Enabled(ctx, l) // the sampling stage decides
}

// levelCache holds a named logger's level with the controller version it
// was computed at: the hierarchical look-up (a map probe per dotted
// segment) runs once per change instead of once per Enabled.
type levelCache struct {
	v atomic.Uint64 // (version+1)<<32 | uint32(level); 0: empty
}

// level returns the level that applies to h's logger.
func (h *Handler) level() slog.Level {
	c := h.p.levels
	if h.name == "" {
		return c.Level()
	}
	// Read the version before the levels: a change in between leaves a
	// stale version in the cache, which the next call recomputes.
	ver := (c.version.Load() + 1) & 0xffffffff
	if ver == 0 {
		ver = 1 // 0 means empty
	}
	if got := h.lc.v.Load(); got>>32 == ver {
		return slog.Level(int32(uint32(got)))
	}
	l := c.levelFor(h.name)
	h.lc.v.Store(ver<<32 | uint64(uint32(int32(l))))
	return l
}

// Handle sends r down the pipeline. Callers must have asked Enabled first
// (slog.Logger does).
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a handler whose records carry as.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	h2 := *h
	if h.p.redact != nil {
		as = h.p.redact.attrs(as)
	}
	h2.w = h.w.withAttrs(as)
	if h.x != nil {
		as = slices.Clone(as)
		h2.x = h.x.WithAttrs(as)
		h2.ops = append(slices.Clip(h.ops), op{attrs: as})
	}
	h2.compose()
	return &h2
}

// WithGroup returns a handler that nests later attributes under name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.w = h.w.withGroup(name)
	if h.x != nil {
		h2.x = h.x.WithGroup(name)
		h2.ops = append(slices.Clip(h.ops), op{group: name})
	}
	h2.compose()
	return &h2
}

// Audit writes a WARN record whatever the levels and sampling say: for
// changes an operator must always be able to trace, such as log level
// changes made at runtime.
func (h *Handler) Audit(ctx context.Context, msg string, attrs ...slog.Attr) {
	var pcs [1]uintptr
	runtime.Callers(2, pcs[:])
	r := slog.NewRecord(time.Now(), slog.LevelWarn, msg, pcs[0])
	r.AddAttrs(attrs...)
	_ = h.next.Handle(ctx, r)
}
