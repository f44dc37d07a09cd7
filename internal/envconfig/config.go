// Package envconfig is observe's typed reader of the environment: booleans,
// durations, positive milliseconds, integers, URLs, header lists and
// enumerations, each malformed value collected as an *Error naming the
// variable and what it accepts, and the OTLP exporter section of each signal
// (otlp.go) with the OpenTelemetry spec's precedence.
//
// The root package reads every variable through an Env once, in loadConfig;
// the packages below it receive values, never the environment.
package envconfig

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Error is a malformed setting. Variable names the environment variable (or
// option) at fault; Accepted says what is accepted. observe.ConfigError is
// this type.
type Error struct {
	Variable string
	Value    string
	Accepted string
	Err      error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "observe: invalid %s=%q", e.Variable, e.Value)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Accepted != "" {
		fmt.Fprintf(&b, " (accepted: %s)", e.Accepted)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// What several variables accept, for their errors.
const (
	acceptBool    = "true, false"
	acceptMillis  = "a positive number of milliseconds"
	acceptPosInt  = "a positive integer"
	acceptHeaders = "comma-separated key=value pairs, values percent-encoded"
)

// Env reads variables through getenv and collects what is malformed. Each
// variable is reported once, however many readers look at it (the general
// OTEL_EXPORTER_OTLP_* ones are read for every signal).
type Env struct {
	getenv   func(string) string
	errs     []error
	reported map[string]bool
}

// New returns an Env reading through getenv (os.Getenv, or a map in tests).
func New(getenv func(string) string) *Env {
	return &Env{getenv: getenv, reported: map[string]bool{}}
}

// Raw returns the variable's value as it is.
func (e *Env) Raw(name string) string { return e.getenv(name) }

// Get returns the variable's value without surrounding white space ("" when
// unset).
func (e *Env) Get(name string) string { return strings.TrimSpace(e.getenv(name)) }

// Bad records a malformed value. Credentials written into a URL
// (user:password@) are not echoed.
func (e *Env) Bad(name, value, accepted string, err error) {
	e.add(name, &Error{Variable: name, Value: redactUserinfo(value), Accepted: accepted, Err: err})
}

// Secret records a malformed value that must never be echoed (headers,
// keys).
func (e *Env) Secret(name, accepted string, err error) {
	e.add(name, &Error{Variable: name, Value: "<redacted>", Accepted: accepted, Err: err})
}

func (e *Env) add(name string, err error) {
	if e.reported[name] {
		return
	}
	e.reported[name] = true
	e.errs = append(e.errs, err)
}

// Err returns every malformed value recorded, joined, or nil.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// Bool reads strconv.ParseBool's forms into dst; it reports whether the
// variable was set and well formed.
func (e *Env) Bool(name string, dst *bool) bool {
	v := e.Get(name)
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.Bad(name, v, acceptBool, nil)
		return false
	}
	*dst = b
	return true
}

// Switch reads on/off (also true/false, 1/0, any case) into dst.
func (e *Env) Switch(name string, dst *bool) bool {
	switch v := strings.ToLower(e.Get(name)); v {
	case "":
	case "on", "true", "1":
		*dst = true
		return true
	case "off", "false", "0":
		*dst = false
		return true
	default:
		e.Bad(name, v, "on, off", nil)
	}
	return false
}

// Millis reads a positive number of milliseconds into dst.
func (e *Env) Millis(name string, dst *time.Duration) bool {
	v := e.Get(name)
	if v == "" {
		return false
	}
	ms, err := strconv.Atoi(v)
	// Past ~292 years the nanoseconds of a time.Duration overflow.
	if err != nil || ms <= 0 || ms > math.MaxInt64/int(time.Millisecond) {
		e.Bad(name, v, acceptMillis, nil)
		return false
	}
	*dst = time.Duration(ms) * time.Millisecond
	return true
}

// Duration reads a Go duration (time.ParseDuration) accepted by ok into
// dst; accepted describes what ok accepts.
func (e *Env) Duration(name, accepted string, ok func(time.Duration) bool, dst *time.Duration) bool {
	v := e.Get(name)
	if v == "" {
		return false
	}
	d, err := time.ParseDuration(v)
	if err != nil || (ok != nil && !ok(d)) {
		e.Bad(name, v, accepted, nil)
		return false
	}
	*dst = d
	return true
}

// Int reads an integer accepted by ok into dst; accepted describes what ok
// accepts.
func (e *Env) Int(name, accepted string, ok func(int) bool, dst *int) bool {
	v := e.Get(name)
	if v == "" {
		return false
	}
	n, err := strconv.Atoi(v)
	if err != nil || (ok != nil && !ok(n)) {
		e.Bad(name, v, accepted, nil)
		return false
	}
	*dst = n
	return true
}

// PositiveInt reads an integer above zero into dst.
func (e *Env) PositiveInt(name string, dst *int) bool {
	return e.Int(name, acceptPosInt, func(n int) bool { return n > 0 }, dst)
}

// URL reads an absolute http or https URL into dst; accepted gives an
// example for the error.
func (e *Env) URL(name, accepted string, dst *string) bool {
	v := e.Get(name)
	if v == "" {
		return false
	}
	if err := CheckEndpoint(v); err != nil {
		e.Bad(name, v, accepted, err)
		return false
	}
	*dst = v
	return true
}

// Enum reads one of accepted into dst.
func (e *Env) Enum(name string, dst *string, accepted ...string) bool {
	v := e.Get(name)
	if v == "" {
		return false
	}
	for _, a := range accepted {
		if v == a {
			*dst = v
			return true
		}
	}
	e.Bad(name, v, strings.Join(accepted, ", "), nil)
	return false
}

// headers reads a header list (OTEL_EXPORTER_OTLP_HEADERS's form) and
// merges it into dst, allocating it when nil; a malformed list is reported
// without its value (headers carry credentials).
func (e *Env) headers(name string, dst *map[string]string) bool {
	v := e.Raw(name)
	if strings.TrimSpace(v) == "" {
		return false
	}
	h, err := parseHeaders(v)
	if err != nil {
		e.Secret(name, acceptHeaders, err)
		return false
	}
	if *dst == nil {
		*dst = make(map[string]string, len(h))
	}
	for k, val := range h {
		(*dst)[k] = val
	}
	return true
}

// CheckEndpoint reports what is wrong with v as an absolute http(s) URL.
func CheckEndpoint(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("scheme must be http or https")
	}
	if u.Host == "" {
		return errors.New("missing host")
	}
	return nil
}

// parseHeaders parses OTEL_EXPORTER_OTLP_HEADERS: comma-separated key=value
// pairs with percent-encoded values. Error messages never contain values
// (they are usually credentials).
func parseHeaders(s string) (map[string]string, error) {
	out := map[string]string{}
	err := EachPair(s, func(_, k, v string, ok bool) error {
		if !ok || k == "" || strings.ContainsAny(k, " \t\r\n:") {
			return errors.New("an entry is not key=value")
		}
		dv, err := url.PathUnescape(v)
		if err != nil || strings.ContainsAny(dv, "\r\n") {
			return fmt.Errorf("value of header %q is not percent-encoded correctly", k)
		}
		out[k] = dv
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EachPair calls each for every entry of a comma-separated key=value list
// (OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES), skipping empty
// entries: part is the entry, k and v its key and value, trimmed, ok whether
// it had an '='. The first error each returns is returned.
func EachPair(s string, each func(part, k, v string, ok bool) error) error {
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if err := each(part, strings.TrimSpace(k), strings.TrimSpace(v), ok); err != nil {
			return err
		}
	}
	return nil
}

// credentials matches the password of user info, with or without a
// scheme: "http://user:pw@host", "user:pw@host".
var credentials = regexp.MustCompile(`((?:[A-Za-z][A-Za-z0-9+.-]*://)?[^/?#@:\s]*:)[^/?#@\s]*@`)

// redactUserinfo masks the password of URL user info in v.
func redactUserinfo(v string) string {
	if !strings.Contains(v, "@") {
		return v
	}
	return credentials.ReplaceAllString(v, "${1}<redacted>@")
}
