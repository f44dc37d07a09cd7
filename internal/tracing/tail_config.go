package tracing

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Accepted values of the tail sampling settings, for error messages.
const (
	TailBaselineAccepted = "a ratio between 0 and 1 (the baseline fraction of normal traces kept; default 0.01)"
	TailLatencyAccepted  = `"off", a quantile of the route's recent durations such as "p99" or "p99.9", a duration such as "750ms", or both comma-separated ("p99,2s")`
	TailErrorsAccepted   = "root, any"
	TailMaxAccepted      = "a positive integer"
)

// ParseTailBaseline parses the baseline fraction (OTEL_TRACES_SAMPLER_ARG
// with OTEL_TRACES_SAMPLER=observe_tail); "" is defaultTailBaseline.
func ParseTailBaseline(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return defaultTailBaseline, nil
	}
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || !(r >= 0 && r <= 1) {
		return 0, fmt.Errorf("%q is not a ratio between 0 and 1", s)
	}
	return r, nil
}

// ParseTailLatency parses what makes a trace slow (OBSERVE_TAIL_LATENCY):
// "off"; "pNN" — above that quantile of the route's recent durations
// ("p99", "p95", "p99.9"); a Go duration ("750ms") — above a fixed
// threshold; or one of each, comma-separated: slow when above either.
// "" is p99.
func ParseTailLatency(s string) (fixed time.Duration, quantile float64, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, defaultTailQuantile, nil
	}
	if strings.EqualFold(s, "off") {
		return 0, 0, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		switch {
		case part == "":
			return 0, 0, errors.New("empty item")
		case part[0] == 'p' || part[0] == 'P':
			if quantile != 0 {
				return 0, 0, errors.New("more than one quantile")
			}
			v, perr := strconv.ParseFloat(part[1:], 64)
			if perr != nil || !(v > 0 && v < 100) {
				return 0, 0, fmt.Errorf("%q is not a percentile between p0 and p100 (exclusive)", part)
			}
			quantile = v / 100
		default:
			if fixed != 0 {
				return 0, 0, errors.New("more than one duration")
			}
			d, derr := time.ParseDuration(part)
			if derr != nil || d <= 0 {
				return 0, 0, fmt.Errorf("%q is not a positive duration such as 750ms", part)
			}
			fixed = d
		}
	}
	return fixed, quantile, nil
}

// ParseTailErrors parses which errors keep a trace (OBSERVE_TAIL_ERRORS):
// "root" (default: the local root's status) or "any" (any span's).
func ParseTailErrors(s string) (anyError bool, err error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "root":
		return false, nil
	case "any":
		return true, nil
	}
	return false, fmt.Errorf("%q is neither root nor any", s)
}

// ParseTailMax parses a buffer cap (OBSERVE_TAIL_MAX_SPANS,
// OBSERVE_TAIL_MAX_TRACES); "" is 0, the default.
func ParseTailMax(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive integer", s)
	}
	return n, nil
}
