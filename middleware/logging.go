package middleware

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/observekit/observe/internal/accesslog"
	"github.com/observekit/observe/internal/logging"
	"github.com/observekit/observe/internal/metrics"
	"github.com/observekit/observe/internal/wiring"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// logOpts are the logging options of a middleware: the access log line and
// per-request debug (see logging.StartRequestDebug).
type logOpts struct {
	accessLog *bool // nil: observe's setting (OBSERVE_ACCESS_LOG, on by default)
}

// WithAccessLog switches the access log line of this middleware on or off,
// whatever observe's setting (observe.WithAccessLog, OBSERVE_ACCESS_LOG)
// says. The line is written at INFO by the logger "observe.access" (so
// PUT /loglevel can silence it too) when a server request or call ends,
// except for health endpoints (/livez, /readyz, /startupz, /healthz,
// /metrics; grpc.health.v1.Health), with the method, route, status,
// duration, response size and, from the context, trace_id and span_id.
func WithAccessLog(on bool) Option {
	return func(o *options) { o.accessLog = &on }
}

// accessLogger writes the access log lines.
var accessLogger = logging.Named("observe.access")

// debugHeader is logging.DebugHeader in canonical form, and in gRPC's.
const (
	debugHeader   = "X-Observe-Debug"
	debugMetadata = "x-observe-debug"
)

// requestLog is what startRequestLog decided for one request.
type requestLog struct {
	debug bool // marked for per-request debug: EndRequestDebug is due
}

// startRequestLog applies per-request debug to an HTTP server request: ctx
// is the request's context after extraction and the span's start. The
// X-Observe-Debug header is removed from the request, valid or not, so the
// handler can neither echo nor forward the token.
func startRequestLog(ctx context.Context, r *http.Request) (context.Context, requestLog) {
	hv, asked := r.Header[debugHeader]
	if !asked && len(r.Header["Baggage"]) == 0 {
		return ctx, requestLog{} // nothing to honour or strip
	}
	token := ""
	if asked {
		if len(hv) > 0 {
			token = hv[0]
		}
		delete(r.Header, debugHeader)
	}
	ctx, on := logging.StartRequestDebug(ctx, token)
	return ctx, requestLog{debug: on}
}

// endHTTP ends a request's logging: the access log line, then the end of
// per-request debug. end is when the request ended.
func (o *logOpts) endHTTP(ctx context.Context, rl requestLog, r *http.Request, route string, status int, written int64, end time.Time, d time.Duration) {
	if o.accessLogOn() && !healthPath(r.URL.Path) {
		h := accessLogger.Handler()
		if h.Enabled(ctx, slog.LevelInfo) {
			l := accesslog.HTTP{Method: r.Method, Route: route, Path: r.URL.Path, Status: status, Dur: d, Size: written}
			if !accesslog.WriteHTTP(ctx, h, end, l) {
				writeAccessRecord(ctx, h, end, "request",
					slog.String("http.request.method", l.Method),
					slog.String("http.route", l.Route),
					slog.String("url.path", l.Path),
					slog.Int("http.response.status_code", l.Status),
					slog.Float64("duration_ms", durationMS(l.Dur)),
					slog.Int64("http.response.body.size", l.Size),
				)
			}
		}
	}
	if rl.debug {
		logging.EndRequestDebug()
	}
}

// writeAccessRecord writes an access log line as a record through h (which
// said Enabled: asking twice would sample twice) when it cannot be written
// from its fields (accesslog): a sampling or export stage, or a redaction
// policy that masks one of its keys. slog.Logger is skipped: it would look
// up the caller's PC (runtime.Callers, a tenth of the line's cost) for a
// source the line does not carry, and take the time again.
func writeAccessRecord(ctx context.Context, h slog.Handler, end time.Time, msg string, attrs ...slog.Attr) {
	r := slog.NewRecord(end, slog.LevelInfo, msg, 0)
	r.AddAttrs(attrs...)
	_ = h.Handle(ctx, r)
}

// startRPCLog is startRequestLog for a gRPC server call: ctx is the call's
// context after extraction and the span's start, md its metadata as the
// stats handler got it (nil: read the context's). The x-observe-debug
// metadata is hidden from the handler. noBaggage says the propagator
// already looked for baggage metadata and found none.
func startRPCLog(ctx context.Context, md metadata.MD, noBaggage bool) (context.Context, requestLog) {
	token := ""
	if v := callMD(ctx, md, debugMetadata); v != nil {
		if len(v) > 0 {
			token = v[0]
		}
		if in, ok := metadata.FromIncomingContext(ctx); ok {
			delete(in, debugMetadata) // FromIncomingContext returns a copy
			ctx = metadata.NewIncomingContext(ctx, in)
		}
	} else if noBaggage || callMD(ctx, md, "baggage") == nil {
		return ctx, requestLog{}
	}
	ctx, on := logging.StartRequestDebug(ctx, token)
	return ctx, requestLog{debug: on}
}

// endRPC ends a gRPC server call's logging. method is the rpc_method label
// ("pkg.Service/Method" or _OTHER).
func (o *logOpts) endRPC(ctx context.Context, rl requestLog, method string, code codes.Code, end time.Time, d time.Duration) {
	if o.accessLogOn() && !healthMethod(method) {
		h := accessLogger.Handler()
		if h.Enabled(ctx, slog.LevelInfo) {
			l := accesslog.RPC{Method: method, Code: metrics.GRPCCodeName(uint32(code)), Dur: d}
			if !accesslog.WriteRPC(ctx, h, end, l) {
				writeAccessRecord(ctx, h, end, "rpc",
					slog.String("rpc.system", "grpc"),
					slog.String("rpc.method", l.Method),
					slog.String("rpc.response.status_code", l.Code),
					slog.Float64("duration_ms", durationMS(l.Dur)),
				)
			}
		}
	}
	if rl.debug {
		logging.EndRequestDebug()
	}
}

func (o *logOpts) accessLogOn() bool {
	if o.accessLog != nil {
		return *o.accessLog
	}
	h, _ := wiring.LogRoot.Load().(*logging.Handler)
	return h != nil && h.AccessLog()
}

// durationMS is d in milliseconds, to the microsecond.
func durationMS(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// healthPath reports whether p is a health or metrics endpoint, which the
// access log skips: probes would drown the requests.
func healthPath(p string) bool {
	if n := len(p); n > 1 && p[n-1] == '/' {
		p = p[:n-1]
	}
	switch p {
	case "/livez", "/readyz", "/startupz", "/healthz", "/metrics":
		return true
	}
	return false
}

func healthMethod(m string) bool {
	switch m {
	case "grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch", "grpc.health.v1.Health/List":
		return true
	}
	return false
}
