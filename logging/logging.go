// Package logging holds the logging calls a service owner makes beyond
// log/slog: Named loggers with their own runtime level, level parsing, and
// SampleRates, the per-level sampling given to observe.WithLogSampling.
//
// observe.Init makes its logger slog.Default(), so plain slog calls write
// observe's JSON lines with the trace context; the pipeline (levels,
// per-request debug, sampling, redaction, buffering, OTLP) lives in an
// internal package.
package logging

import (
	"log/slog"

	ilogging "github.com/observekit/observe/internal/logging"
)

// Named returns a logger whose lines carry "logger":name and whose level is
// the runtime level set for name (PUT /loglevel with "logger"; hierarchical:
// "db" covers "db.pool"), else the global level. It may be created before
// observe.Init, as a package variable: it writes through whatever observe
// logger is current when it logs.
func Named(name string) *slog.Logger { return ilogging.Named(name) }

// ParseLevel parses debug, info, warn (or warning) and error,
// case-insensitively: the values OBSERVE_LOG_LEVEL and PUT /loglevel accept.
func ParseLevel(s string) (slog.Level, error) { return ilogging.ParseLevel(s) }

// SampleRates are the fractions of lines kept per level, each in (0, 1],
// for observe.WithLogSampling (OBSERVE_LOG_SAMPLING in the environment).
// The zero value of a field keeps every line of that level. Debug covers
// DEBUG and anything below it; Info covers INFO up to, not including, WARN.
// WARN and ERROR lines are never sampled, and a sampled trace keeps all its
// lines.
type SampleRates = ilogging.SampleRates
