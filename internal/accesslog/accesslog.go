// Package accesslog is the link between observe's middleware and its
// logging pipeline for the access log line: the middleware hands over the
// line's fields as it has them, and logging encodes them straight into the
// line, without building an slog.Record or redacting values the middleware
// produced itself (route templates, status codes, durations).
package accesslog

import (
	"context"
	"log/slog"
	"time"
)

// HTTP is an HTTP server request's access line.
type HTTP struct {
	Method string // the request's method, as received
	Route  string // the route template ("" when nothing matched)
	Path   string // the raw URL path: client input, redacted
	Status int
	Dur    time.Duration
	Size   int64 // response body bytes
}

// RPC is a gRPC server call's access line. Every field is produced by the
// middleware: nothing in it is redacted.
type RPC struct {
	Method string // rpc_method label: "pkg.Service/Method" or _OTHER
	Code   string // status code name: OK, NOT_FOUND, …
	Dur    time.Duration
}

// WriteHTTP and WriteRPC write the line at INFO with message "request" or
// "rpc" through h, when h is observe's logging handler (named) with no
// stage that needs a record; they report false otherwise, and the caller
// then builds an slog.Record. The caller has asked h.Enabled. Set by
// package logging.
var (
	WriteHTTP func(ctx context.Context, h slog.Handler, end time.Time, l HTTP) bool
	WriteRPC  func(ctx context.Context, h slog.Handler, end time.Time, l RPC) bool
)
