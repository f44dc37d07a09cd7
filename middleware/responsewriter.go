package middleware

import (
	"bufio"
	"io"
	"net"
	"net/http"
)

// responseWriter records the status and body size. It keeps the optional
// interfaces: Flush and Hijack go through http.ResponseController to the
// wrapped writer, Unwrap lets http.ResponseController reach it for
// deadlines and full-duplex, and ReadFrom keeps sendfile.
type responseWriter struct {
	w           http.ResponseWriter
	status      int
	written     int64
	wroteHeader bool
}

func (rw *responseWriter) reset(w http.ResponseWriter) {
	*rw = responseWriter{w: w}
}

func (rw *responseWriter) Header() http.Header { return rw.w.Header() }

func (rw *responseWriter) WriteHeader(code int) {
	if !rw.wroteHeader {
		// 1xx informational responses are not the final status.
		if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
			rw.w.WriteHeader(code)
			return
		}
		rw.status = code
		rw.wroteHeader = true
	}
	rw.w.WriteHeader(code)
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	if !rw.wroteHeader {
		rw.status = http.StatusOK
		rw.wroteHeader = true
	}
	n, err := rw.w.Write(p)
	rw.written += int64(n)
	return n, err
}

// ReadFrom keeps the wrapped writer's io.ReaderFrom (sendfile) fast path.
func (rw *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	if !rw.wroteHeader {
		rw.status = http.StatusOK
		rw.wroteHeader = true
	}
	var n int64
	var err error
	if rf, ok := rw.w.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(rw.w, r)
	}
	rw.written += n
	return n, err
}

// Flush implements http.Flusher.
func (rw *responseWriter) Flush() {
	if !rw.wroteHeader {
		rw.status = http.StatusOK
		rw.wroteHeader = true
	}
	_ = http.NewResponseController(rw.w).Flush()
}

// FlushError is what http.ResponseController prefers to Flush.
func (rw *responseWriter) FlushError() error {
	if !rw.wroteHeader {
		rw.status = http.StatusOK
		rw.wroteHeader = true
	}
	return http.NewResponseController(rw.w).Flush()
}

// Hijack implements http.Hijacker when the wrapped writer does.
func (rw *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, b, err := http.NewResponseController(rw.w).Hijack()
	if err == nil && !rw.wroteHeader {
		rw.status = http.StatusSwitchingProtocols
		rw.wroteHeader = true
	}
	if err != nil && err == http.ErrNotSupported {
		err = errNoHijack
	}
	return c, b, err
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.w }
