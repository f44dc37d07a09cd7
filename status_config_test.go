package observe

import (
	"errors"
	"strings"
	"testing"

	"github.com/observekit/observe/internal/logging"
)

func TestStatusLimitsConfig(t *testing.T) {
	c, err := loadConfig(envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.spanStoreSize != 4096 || c.statusLogBytes != logging.DefaultRingBytes || c.statusLogLines != logging.DefaultRingLines {
		t.Fatalf("defaults: %d %d %d", c.spanStoreSize, c.statusLogBytes, c.statusLogLines)
	}
	c, err = loadConfig(envOf(map[string]string{
		"OBSERVE_STATUS_SPANS": "100", "OBSERVE_STATUS_LOG_BYTES": "512KiB", "OBSERVE_STATUS_LOG_LINES": "50",
	}), nil)
	if err != nil || c.spanStoreSize != 100 || c.statusLogBytes != 512<<10 || c.statusLogLines != 50 {
		t.Fatalf("from the environment: %v %d %d %d", err, c.spanStoreSize, c.statusLogBytes, c.statusLogLines)
	}
	// Options win.
	c, err = loadConfig(envOf(map[string]string{"OBSERVE_STATUS_SPANS": "100"}), []Option{WithStatusLimits(StatusLimits{Spans: 7, LogBytes: 8 << 20})})
	if err != nil || c.spanStoreSize != 7 || c.statusLogBytes != 8<<20 || c.statusLogLines != logging.DefaultRingLines {
		t.Fatalf("options: %v %d %d", err, c.spanStoreSize, c.statusLogBytes)
	}
	for name, v := range map[string]string{
		"OBSERVE_STATUS_SPANS": "0", "OBSERVE_STATUS_LOG_BYTES": "1KiB", "OBSERVE_STATUS_LOG_LINES": "many",
	} {
		_, err := loadConfig(envOf(map[string]string{name: v}), nil)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Variable != name || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: %v", name, v, err)
		}
	}
}
