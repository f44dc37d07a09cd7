// Package peer holds the parts of the peer stack (otelhttp, promhttp, slog)
// that the comparative benchmarks and the load-test peer share.
package peer

import (
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// AccessLog writes one JSON line per request through log, with the trace
// context, the way observe's access log does: what a team adds by hand on
// top of otelhttp to get the same line.
func AccessLog(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rw, r)
		sc := trace.SpanContextFromContext(r.Context())
		log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("trace_id", sc.TraceID().String()),
			slog.String("span_id", sc.SpanID().String()),
			slog.String("http.request.method", r.Method),
			slog.String("http.route", r.Pattern),
			slog.String("url.path", r.URL.Path),
			slog.Int("http.response.status_code", rw.status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.Int64("http.response.body.size", rw.written),
		)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status  int
	written int64
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	n, err := s.ResponseWriter.Write(p)
	s.written += int64(n)
	return n, err
}
