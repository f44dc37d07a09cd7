package observe

import (
	"errors"
	"fmt"
	"github.com/observekit/observe/internal/envconfig"
	"strconv"
	"strings"
	"time"
)

// anomalySettings is the anomaly detection part of config.
type anomalySettings struct {
	off             bool          // OBSERVE_ANOMALY=off
	threshold       float64       // OBSERVE_ANOMALY_SENSITIVITY: the score a window must reach
	window          time.Duration // OBSERVE_ANOMALY_WINDOW
	tail            time.Duration // OBSERVE_ANOMALY_TAIL: evidence kept after the end
	traces          bool          // OBSERVE_ANOMALY_RESPONSES
	logs            bool
	profile         bool
	profileDuration time.Duration // OBSERVE_ANOMALY_PROFILE_DURATION
}

// Defaults of the anomaly settings.
const (
	defaultAnomalyWindow   = 10 * time.Second
	defaultAnomalyTail     = time.Minute
	defaultAnomalyProfile  = 5 * time.Second
	defaultAnomalyScore    = 4.0
	anomalySensitivityHelp = "low, medium (default), high, or a score between 2 and 20 (medium is 4: lower is more sensitive)"
	anomalyResponsesHelp   = `a comma-separated list of traces, logs, profile; or "none"`
)

func defaultAnomalySettings() anomalySettings {
	return anomalySettings{
		threshold:       defaultAnomalyScore,
		window:          defaultAnomalyWindow,
		tail:            defaultAnomalyTail,
		traces:          true,
		logs:            true,
		profile:         true,
		profileDuration: defaultAnomalyProfile,
	}
}

// WithAnomalyDetection switches in-process anomaly detection on or off. It
// overrides OBSERVE_ANOMALY.
func WithAnomalyDetection(on bool) Option { return func(c *config) { c.anomaly.off = !on } }

// parseSensitivity reads OBSERVE_ANOMALY_SENSITIVITY: the score threshold.
func parseSensitivity(v string) (float64, error) {
	switch strings.ToLower(v) {
	case "low":
		return 6, nil
	case "medium":
		return defaultAnomalyScore, nil
	case "high":
		return 3, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= 2 && f <= 20) {
		return 0, errors.New("not a sensitivity")
	}
	return f, nil
}

// loadAnomalyEnv reads OBSERVE_ANOMALY, OBSERVE_ANOMALY_SENSITIVITY,
// OBSERVE_ANOMALY_WINDOW, OBSERVE_ANOMALY_TAIL, OBSERVE_ANOMALY_RESPONSES
// and OBSERVE_ANOMALY_PROFILE_DURATION.
func loadAnomalyEnv(env *envconfig.Env, c *config) {
	a := &c.anomaly
	var on bool
	if env.Switch("OBSERVE_ANOMALY", &on) {
		a.off = !on
	}
	if v := env.Get("OBSERVE_ANOMALY_SENSITIVITY"); v != "" {
		f, err := parseSensitivity(v)
		if err != nil {
			env.Bad("OBSERVE_ANOMALY_SENSITIVITY", v, anomalySensitivityHelp, nil)
		} else {
			a.threshold = f
		}
	}
	durations := []struct {
		name     string
		dst      *time.Duration
		min, max time.Duration
	}{
		{"OBSERVE_ANOMALY_WINDOW", &a.window, 100 * time.Millisecond, time.Hour},
		{"OBSERVE_ANOMALY_TAIL", &a.tail, 0, 24 * time.Hour},
		{"OBSERVE_ANOMALY_PROFILE_DURATION", &a.profileDuration, time.Second, time.Minute},
	}
	for _, d := range durations {
		env.Duration(d.name, fmt.Sprintf("a Go duration from %s to %s", d.min, d.max),
			func(v time.Duration) bool { return v >= d.min && v <= d.max }, d.dst)
	}
	if v := env.Get("OBSERVE_ANOMALY_RESPONSES"); v != "" {
		traces, logs, profile, err := parseAnomalyResponses(v)
		if err != nil {
			env.Bad("OBSERVE_ANOMALY_RESPONSES", v, anomalyResponsesHelp, err)
		} else {
			a.traces, a.logs, a.profile = traces, logs, profile
		}
	}
}

func parseAnomalyResponses(v string) (traces, logs, profile bool, err error) {
	if strings.EqualFold(v, "none") {
		return false, false, false, nil
	}
	if len(v) > 256 {
		return false, false, false, errors.New("too long")
	}
	for _, p := range strings.Split(v, ",") {
		switch strings.ToLower(strings.TrimSpace(p)) {
		case "traces":
			traces = true
		case "logs":
			logs = true
		case "profile", "profiles":
			profile = true
		case "":
		default:
			return false, false, false, fmt.Errorf("unknown response %q", strings.TrimSpace(p))
		}
	}
	return traces, logs, profile, nil
}
