package observe

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/observekit/observe/internal/wiring"
	"go.opentelemetry.io/otel"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// What the OpenTelemetry SDK reports on its own (a metrics push that
// failed, the warnings and errors of its components) reaches otel's global
// error handler and logger, which by default print to stderr, one
// unstructured line per failure. Init routes both to the observe logger
// instead: a WARN line per signal at most every otelReportInterval, saying
// how many were not logged since. Counts are on /metrics
// (observe_export_failures_total). Spans and log records have export
// pipelines of observe's own (tracing, logging), which count and report
// their failures and drops themselves.
//
// The error handler is installed once per process, and only when the
// program has not set one of its own. Between Observers (before Init, after
// Shutdown) errors are printed as OpenTelemetry's default would.

// otelReportInterval bounds the WARN lines per signal.
const otelReportInterval = 30 * time.Second

var (
	installOTelHooks sync.Once
	liveReporter     atomic.Pointer[otelReporter]
)

// otelReporter writes the WARN lines of one Observer.
type otelReporter struct {
	owner  *Observer
	log    *slog.Logger
	limits map[string]*rateLimit

	logFailures atomic.Uint64 // the log export failures last seen
}

type rateLimit struct {
	mu         sync.Mutex
	last       time.Time
	suppressed uint64
}

// allow reports whether a line may be written now, and how many were
// suppressed since the last one.
func (r *rateLimit) allow(now time.Time) (bool, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < otelReportInterval {
		r.suppressed++
		return false, 0
	}
	r.last = now
	n := r.suppressed
	r.suppressed = 0
	return true, n
}

// reportOTelErrors makes o the receiver of the SDK's errors and warnings
// (Init calls it once the logger runs).
func (o *Observer) reportOTelErrors() {
	r := &otelReporter{
		owner:  o,
		log:    slog.New(o.logHandler.WithName("observe.otel")),
		limits: map[string]*rateLimit{},
	}
	for _, s := range []string{"traces", "metrics", "logs", "profiles", "other"} {
		r.limits[s] = &rateLimit{}
	}
	liveReporter.Store(r)
	installOTelHooks.Do(func() {
		if isDefaultErrorHandler(otel.GetErrorHandler()) {
			otel.SetErrorHandler(otelErrorHandler{})
		}
		otel.SetLogger(logr.New(otelLogSink{}))
	})
}

// current returns the live reporter, or nil once its Observer is shut down.
func currentReporter() *otelReporter {
	r := liveReporter.Load()
	if r == nil || r.owner.logHandler == nil || wiring.LogRoot.Load() != any(r.owner.logHandler) {
		return nil
	}
	return r
}

func isDefaultErrorHandler(h otel.ErrorHandler) bool {
	return h == nil || strings.HasSuffix(fmt.Sprintf("%T", h), ".ErrDelegator")
}

// signalOf guesses which signal an SDK message is about: by its words,
// else by which export failure counter moved (the SDK's errors do not say
// where they come from).
func (r *otelReporter) signalOf(s string) string {
	if sig := signalWord(s); sig != "" {
		return sig
	}
	if h := r.owner.logHandler; h != nil {
		if n := h.ExportFailures(); n != r.logFailures.Swap(n) {
			return "logs"
		}
	}
	return "other"
}

func signalWord(s string) string {
	s = strings.ToLower(s)
	switch {
	case strings.Contains(s, "span") || strings.Contains(s, "trace"):
		return "traces"
	case strings.Contains(s, "metric") || strings.Contains(s, "reader"):
		return "metrics"
	case strings.Contains(s, "log"):
		return "logs"
	case strings.Contains(s, "profil"):
		return "profiles"
	}
	return ""
}

// userInfo matches the user info of a URL inside a message (exporters put
// the endpoint in their errors).
var userInfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]*@`)

func scrubMessage(s string) string {
	if strings.Contains(s, "@") {
		s = userInfo.ReplaceAllString(s, "${1}[REDACTED]@")
	}
	return s
}

// warn writes a WARN line unless one about the same signal was written
// less than otelReportInterval ago.
func (r *otelReporter) warn(signal, msg string, attrs ...slog.Attr) {
	lim := r.limits[signal]
	if lim == nil {
		lim = r.limits["other"]
	}
	ok, suppressed := lim.allow(time.Now())
	if !ok {
		return
	}
	attrs = append([]slog.Attr{slog.String("signal", signal)}, attrs...)
	attrs = append(attrs, slog.Uint64("not_logged_since_last", suppressed))
	r.log.LogAttrs(context.Background(), slog.LevelWarn, msg, attrs...)
}

// otelErrorHandler is otel's global error handler while observe runs.
type otelErrorHandler struct{}

func (otelErrorHandler) Handle(err error) {
	if err == nil {
		return
	}
	r := currentReporter()
	if r == nil {
		log.Print(scrubMessage(err.Error())) // what OpenTelemetry's default does
		return
	}
	text := scrubMessage(err.Error())
	signal := r.signalOf(text)
	what := signal + " export"
	if signal == "other" {
		what = "OpenTelemetry export"
	}
	r.warn(signal, "observe: "+what+" failed; data is dropped until the backend answers (see observe_export_failures_total)",
		slog.String("error", text))
}

// otelLogSink is otel's global logger while observe runs: warnings (V(1))
// and errors become rate-limited WARN lines.
type otelLogSink struct{ name string }

func (otelLogSink) Init(logr.RuntimeInfo) {}

func (otelLogSink) Enabled(level int) bool { return level <= 1 }

func (s otelLogSink) Info(level int, msg string, kv ...any) {
	r := currentReporter()
	if r == nil {
		return // OpenTelemetry's default logger shows errors only
	}
	r.warn(r.signalOf(msg), "observe: OpenTelemetry SDK warning: "+scrubMessage(msg), kvAttrs(kv)...)
}

func (s otelLogSink) Error(err error, msg string, kv ...any) {
	text := msg
	if err != nil {
		text = msg + ": " + err.Error()
	}
	text = scrubMessage(text)
	r := currentReporter()
	if r == nil {
		log.Print(text)
		return
	}
	r.warn(r.signalOf(text), "observe: OpenTelemetry SDK error", append(kvAttrs(kv), slog.String("error", text))...)
}

func (s otelLogSink) WithValues(...any) logr.LogSink { return s }

func (s otelLogSink) WithName(name string) logr.LogSink { return otelLogSink{name: name} }

func kvAttrs(kv []any) []slog.Attr {
	var out []slog.Attr
	for i := 0; i+1 < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			k = fmt.Sprint(kv[i])
		}
		out = append(out, slog.Any("otel."+k, kv[i+1]))
	}
	return out
}

// An exporter the program hands over (WithSpanExporter, WithLogExporter)
// runs in observe's export goroutines, where a panic would end the process.
// These wrappers turn a panic into an export error, counted and reported
// like any other.

func recoverExport(err *error, exp any, method string) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("observe: exporter %T panicked in %s: %v", exp, method, p)
	}
}

type safeSpanExporter struct{ exp sdktrace.SpanExporter }

func panicSafeSpanExporter(exp sdktrace.SpanExporter) sdktrace.SpanExporter {
	if exp == nil {
		return nil
	}
	if _, ok := exp.(safeSpanExporter); ok {
		return exp
	}
	return safeSpanExporter{exp}
}

func (e safeSpanExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) (err error) {
	defer recoverExport(&err, e.exp, "ExportSpans")
	return e.exp.ExportSpans(ctx, spans)
}

func (e safeSpanExporter) Shutdown(ctx context.Context) (err error) {
	defer recoverExport(&err, e.exp, "Shutdown")
	return e.exp.Shutdown(ctx)
}

type safeLogExporter struct{ exp sdklog.Exporter }

func panicSafeLogExporter(exp sdklog.Exporter) sdklog.Exporter {
	if exp == nil {
		return nil
	}
	if _, ok := exp.(safeLogExporter); ok {
		return exp
	}
	return safeLogExporter{exp}
}

func (e safeLogExporter) Export(ctx context.Context, records []sdklog.Record) (err error) {
	defer recoverExport(&err, e.exp, "Export")
	return e.exp.Export(ctx, records)
}

func (e safeLogExporter) Shutdown(ctx context.Context) (err error) {
	defer recoverExport(&err, e.exp, "Shutdown")
	return e.exp.Shutdown(ctx)
}

func (e safeLogExporter) ForceFlush(ctx context.Context) (err error) {
	defer recoverExport(&err, e.exp, "ForceFlush")
	return e.exp.ForceFlush(ctx)
}
