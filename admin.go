package observe

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/observekit/observe/internal/logging"
	"github.com/observekit/observe/internal/profiling"
)

// maxAdminBody bounds admin request bodies.
const maxAdminBody = 64 << 10

// AdminHandler returns the admin endpoints, for mounting on a server of your
// own (they are also served on OBSERVE_ADMIN_ADDR unless it is "off"):
//
//	GET  /metrics                    open
//	GET  /livez /readyz /startupz    open
//	GET  /loglevel                   open
//	PUT  /loglevel                   protected
//	     /debug/pprof/...            protected
//
// Protected: with OBSERVE_ADMIN_TOKEN set, only "Authorization: Bearer
// <token>" (compared in constant time), else 401; with no token, only
// loopback clients, else 403.
func (o *Observer) AdminHandler() http.Handler { return o.admin }

func (o *Observer) newAdminHandler() http.Handler {
	mux := http.NewServeMux()
	if o.metrics != nil {
		mux.Handle("GET /metrics", o.metrics.Handler())
	} else {
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "metrics are disabled (OTEL_SDK_DISABLED=true or OTEL_METRICS_EXPORTER=none)", http.StatusNotFound)
		})
	}
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /startupz", o.serveStartupz) // health.go
	mux.HandleFunc("GET /readyz", o.serveReadyz)
	mux.HandleFunc("GET /loglevel", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, o.levels.Snapshot())
	})
	o.registerStatus(mux) // the status page and its APIs (status.go)
	mux.Handle("PUT /loglevel", o.protectChange(http.HandlerFunc(o.putLogLevel)))

	pp := http.NewServeMux()
	pp.HandleFunc("/debug/pprof/", pprof.Index)
	pp.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	// Not pprof.Profile: it fails with "cpu profiling already in use" while
	// continuous profiling runs. This one takes the window from the running
	// collection (which still pushes it), and is pprof.Profile otherwise.
	pp.Handle("/debug/pprof/profile", profiling.CPUProfileHandler())
	pp.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	pp.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/pprof/", o.protect(pp))
	o.mountAnomaly(mux) // anomaly_admin.go
	return mux
}

// protect applies the contract's rule for protected admin endpoints.
func (o *Observer) protect(next http.Handler) http.Handler {
	token := o.cfg.adminToken
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" {
			if !bearerMatches(r.Header.Get("Authorization"), token) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="observe"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid bearer token is required"})
				return
			}
		} else if !isLoopback(r.RemoteAddr) {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "protected endpoint: set OBSERVE_ADMIN_TOKEN to allow remote access; without it only loopback clients are allowed"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerMatches compares in constant time, whatever the lengths: the
// SHA-256 sums are compared, not the strings (subtle.ConstantTimeCompare
// returns at once on a length mismatch, which tells the token's length).
func bearerMatches(header, token string) bool {
	const prefix = "Bearer "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(header[len(prefix):])))
	want := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// putLogLevel changes the global or one logger's level, optionally for a
// while (ttl). Bad input is a 400 with a message and changes nothing; every
// change, and every revert after a ttl, is logged at WARN whatever the
// levels are, with who asked, what changed and the ttl.
func (o *Observer) putLogLevel(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBody))
	if err != nil {
		badRequest(w, fmt.Sprintf("request body too large or unreadable (limit %d bytes)", maxAdminBody))
		return
	}
	req, err := logging.ParseLevelRequest(body)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	who := clientName(r)
	change, err := o.levels.Set(req.Logger, req.Level, req.TTL, func(c logging.Change) {
		o.logHandler.Audit(context.Background(), "log level reverted after ttl",
			slog.String("who", "ttl expiry"),
			slog.String("target", loggerLabel(c.Logger)),
			slog.String("from", logging.LevelName(c.From)),
			slog.String("to", logging.LevelName(c.To)))
	})
	if errors.Is(err, logging.ErrTooManyLevels) {
		badRequest(w, err.Error())
		return
	}
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	attrs := []slog.Attr{
		slog.String("who", who),
		slog.String("target", loggerLabel(req.Logger)),
		slog.String("from", logging.LevelName(change.From)),
		slog.String("to", logging.LevelName(change.To)),
	}
	if req.TTL > 0 {
		attrs = append(attrs, slog.String("ttl", req.TTL.String()))
	}
	o.logHandler.Audit(r.Context(), "log level changed", attrs...)
	writeJSON(w, http.StatusOK, o.levels.Snapshot())
}

func loggerLabel(name string) string {
	if name == "" {
		return "(global)"
	}
	return name
}

// clientName identifies who made an admin change, for the WARN line. It
// never includes the token.
func clientName(r *http.Request) string {
	who := r.RemoteAddr
	if r.Header.Get("Authorization") != "" {
		who += " (bearer token)"
	}
	return who
}

func badRequest(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
