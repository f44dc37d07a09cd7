package observe

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAnomalyConfig(t *testing.T) {
	c, err := loadConfig(envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.anomaly; a.off || a.threshold != 4 || a.window != 10*time.Second || a.tail != time.Minute ||
		!a.traces || !a.logs || !a.profile || a.profileDuration != 5*time.Second {
		t.Fatalf("defaults: %+v", a)
	}
	c, err = loadConfig(envOf(map[string]string{
		"OBSERVE_ANOMALY":                  "off",
		"OBSERVE_ANOMALY_SENSITIVITY":      "high",
		"OBSERVE_ANOMALY_WINDOW":           "30s",
		"OBSERVE_ANOMALY_TAIL":             "5m",
		"OBSERVE_ANOMALY_RESPONSES":        "traces, profile",
		"OBSERVE_ANOMALY_PROFILE_DURATION": "2s",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.anomaly; !a.off || a.threshold != 3 || a.window != 30*time.Second || a.tail != 5*time.Minute ||
		!a.traces || a.logs || !a.profile || a.profileDuration != 2*time.Second {
		t.Fatalf("from the environment: %+v", a)
	}
	// The option wins over the environment.
	c, _ = loadConfig(envOf(map[string]string{"OBSERVE_ANOMALY": "off"}), []Option{WithAnomalyDetection(true)})
	if c.anomaly.off {
		t.Fatal("WithAnomalyDetection(true) lost to OBSERVE_ANOMALY=off")
	}
	for _, v := range []string{"low", "medium", "high", "2", "12.5", "MEDIUM"} {
		if _, err := loadConfig(envOf(map[string]string{"OBSERVE_ANOMALY_SENSITIVITY": v}), nil); err != nil {
			t.Errorf("sensitivity %q: %v", v, err)
		}
	}
	if c, _ := loadConfig(envOf(map[string]string{"OBSERVE_ANOMALY_RESPONSES": "none"}), nil); c.anomaly.traces || c.anomaly.logs || c.anomaly.profile {
		t.Error("responses none kept a response")
	}

	bad := map[string][]string{
		"OBSERVE_ANOMALY":                  {"maybe", "2"},
		"OBSERVE_ANOMALY_SENSITIVITY":      {"extreme", "1", "21", "NaN", "-4"},
		"OBSERVE_ANOMALY_WINDOW":           {"10", "abc", "10ms", "2h", "-1s"},
		"OBSERVE_ANOMALY_TAIL":             {"forever", "-1m", "25h"},
		"OBSERVE_ANOMALY_RESPONSES":        {"traces,pages", "all", strings.Repeat("traces,", 40)},
		"OBSERVE_ANOMALY_PROFILE_DURATION": {"500ms", "2m", "x"},
	}
	for name, values := range bad {
		for _, v := range values {
			_, err := loadConfig(envOf(map[string]string{name: v}), nil)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Variable != name || !strings.Contains(err.Error(), name) || ce.Accepted == "" {
				t.Errorf("%s=%q: error %v, want a ConfigError naming the variable and what it accepts", name, v, err)
			}
		}
	}
}

// FuzzConfigAnomaly: the anomaly variables never panic loadConfig; what it
// accepts is in range; what it refuses is a ConfigError naming the variable.
func FuzzConfigAnomaly(f *testing.F) {
	for _, s := range []string{"on", "off", "high", "3.5", "10s", "1m", "traces,logs", "none", "", "x", "1e309", "0x10", "traces,,logs,", "NaN"} {
		f.Add(s, s)
	}
	names := []string{"OBSERVE_ANOMALY", "OBSERVE_ANOMALY_SENSITIVITY", "OBSERVE_ANOMALY_WINDOW", "OBSERVE_ANOMALY_TAIL", "OBSERVE_ANOMALY_RESPONSES", "OBSERVE_ANOMALY_PROFILE_DURATION"}
	f.Fuzz(func(t *testing.T, a, b string) {
		for i, name := range names {
			v := a
			if i%2 == 1 {
				v = b
			}
			c, err := loadConfig(envOf(map[string]string{name: v}), nil)
			if err != nil {
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Variable != name {
					t.Fatalf("%s=%q: %v", name, v, err)
				}
				continue
			}
			s := c.anomaly
			if !(s.threshold >= 2 && s.threshold <= 20) || s.window < 100*time.Millisecond || s.window > time.Hour ||
				s.tail < 0 || s.tail > 24*time.Hour || s.profileDuration < time.Second || s.profileDuration > time.Minute {
				t.Fatalf("%s=%q accepted as %+v", name, v, s)
			}
		}
	})
}
