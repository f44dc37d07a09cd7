package observe

import (
	"errors"
	"slices"
	"strings"
)

// minSecretLen is the shortest configured value scrubbed as a secret from
// error text: shorter ones (x-tenant=a) would garble every message and
// guard nothing.
const minSecretLen = 6

// secretValues lists the credentials observe was configured with: every
// OTLP header value (the headers are where credentials go; which ones are
// secret is not ours to guess), the admin token and the Pyroscope password,
// longest first.
func (c *config) secretValues() []string {
	var out []string
	add := func(v string) {
		if v = strings.TrimSpace(v); len(v) >= minSecretLen {
			out = append(out, v)
			// A scheme's value alone ("Bearer abc…" → "abc…") too: an
			// echo may split them.
			if _, rest, ok := strings.Cut(v, " "); ok && len(strings.TrimSpace(rest)) >= minSecretLen {
				out = append(out, strings.TrimSpace(rest))
			}
		}
	}
	for _, h := range []map[string]string{c.tracing.otlp.Headers, c.metrics.otlp.Headers, c.logs.otlp.Headers} {
		for _, v := range h {
			add(v)
		}
	}
	add(c.adminToken)
	add(c.debugToken)
	add(c.pyroscopePassword)
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out)
}

// scrubbedError is an error whose text had secrets masked. It is still the
// original for errors.Is (context.DeadlineExceeded and the like), but does
// not unwrap to it: the original's text is what it must not hand out.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }

func (e *scrubbedError) Is(target error) bool { return errors.Is(e.err, target) }

// scrubError masks, in the text of an error observe returns, the secrets it
// was configured with and whatever the redaction policy detects: an
// exporter's error can carry a backend's answer, and a backend (or a proxy)
// may echo the request's headers in it. A program that logs the error with
// a logger of its own must not print them.
func (o *Observer) scrubError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	if o.cfg != nil {
		for _, s := range o.cfg.secretValues() {
			clean = strings.ReplaceAll(clean, s, "[REDACTED]")
		}
	}
	if o.redactor != nil {
		clean = o.redactor.String(clean)
	}
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}
