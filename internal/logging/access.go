package logging

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/observekit/observe/internal/accesslog"
)

// The access line is the one line every request writes. The middleware has
// its fields at hand, typed; building an slog.Record from them, walking it
// and asking the redaction policy about six keys and six values it produced
// itself cost about half of the line. These write it straight from the
// fields: the same bytes the record would give (TestAccessLineSameBytes),
// with only client input (the URL path, a non-standard method) redacted.
func init() {
	accesslog.WriteHTTP = writeHTTPAccess
	accesslog.WriteRPC = writeRPCAccess
}

// accessKeys are the keys the access lines use. A redaction policy that
// counts one of them as sensitive would mask its value: the direct path
// is then off, and lines go through the record path as before.
var accessKeys = []string{
	"http.request.method", "http.route", "url.path", "http.response.status_code", "duration_ms",
	"http.response.body.size", "rpc.system", "rpc.method", "rpc.response.status_code",
}

// directAccess reports whether s's redactor lets the access lines be
// written directly: none, or one that says none of accessKeys is sensitive.
func directAccess(r Redactor) bool {
	if r == nil {
		return true
	}
	k, ok := r.(interface{ IsSensitiveKey(string) bool })
	if !ok {
		return false
	}
	for _, key := range accessKeys {
		if k.IsSensitiveKey(key) {
			return false
		}
	}
	return true
}

// accessWriter returns the line writer for a direct access line through h,
// or nil when h's records must go through the pipeline: stages (sampling,
// the export's redaction, the export), bound attributes or groups.
func accessWriter(h slog.Handler) *lineWriter {
	if n, ok := h.(*namedHandler); ok {
		h = n.resolve()
	}
	lh, ok := h.(*Handler)
	if !ok || lh.next != slog.Handler(lh.w) {
		return nil
	}
	w := lh.w
	if !w.s.directAccess || len(w.frames) != 1 || len(w.frames[0].enc) != 0 {
		return nil
	}
	return w
}

func writeHTTPAccess(ctx context.Context, h slog.Handler, end time.Time, l accesslog.HTTP) (ok bool) {
	w := accessWriter(h)
	if w == nil {
		return false
	}
	// A redactor that panics (a user's detector): the record path, which
	// contains it and writes a line saying so.
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	method, path := l.Method, l.Path
	if r := w.s.redactor; r != nil {
		if !standardMethod(method) {
			method = r.String(method)
		}
		path = r.String(path)
	}
	e := &w.s.enc
	bp := bufPool.Get().(*[]byte)
	b := w.appendHeader((*bp)[:0], ctx, end, slog.LevelInfo, "request")
	b = e.appendKey(b, "", "http.request.method")
	b = e.appendString(b, method)
	b = e.appendKey(b, "", "http.route")
	b = e.appendString(b, l.Route)
	b = e.appendKey(b, "", "url.path")
	b = e.appendString(b, path)
	b = e.appendKey(b, "", "http.response.status_code")
	b = strconv.AppendInt(b, int64(l.Status), 10)
	b = e.appendKey(b, "", "duration_ms")
	b = e.appendValue(b, slog.Float64Value(durationMS(l.Dur)))
	b = e.appendKey(b, "", "http.response.body.size")
	b = strconv.AppendInt(b, l.Size, 10)
	_ = w.finish(ctx, bp, b)
	return true
}

func writeRPCAccess(ctx context.Context, h slog.Handler, end time.Time, l accesslog.RPC) bool {
	w := accessWriter(h)
	if w == nil {
		return false
	}
	e := &w.s.enc
	bp := bufPool.Get().(*[]byte)
	b := w.appendHeader((*bp)[:0], ctx, end, slog.LevelInfo, "rpc")
	b = e.appendKey(b, "", "rpc.system")
	b = e.appendString(b, "grpc")
	b = e.appendKey(b, "", "rpc.method")
	b = e.appendString(b, l.Method)
	b = e.appendKey(b, "", "rpc.response.status_code")
	b = e.appendString(b, l.Code)
	b = e.appendKey(b, "", "duration_ms")
	b = e.appendValue(b, slog.Float64Value(durationMS(l.Dur)))
	_ = w.finish(ctx, bp, b)
	return true
}

// finish closes the line, writes it and returns the buffer to the pool.
func (w *lineWriter) finish(ctx context.Context, bp *[]byte, b []byte) error {
	if !w.s.enc.text {
		b = append(b, '}')
	}
	b = append(b, '\n')
	err := w.emit(ctx, b, slog.LevelInfo)
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		bufPool.Put(bp)
	}
	return err
}

// durationMS is d in milliseconds, to the microsecond: the access lines'
// duration_ms.
func durationMS(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

func standardMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH":
		return true
	}
	return false
}
