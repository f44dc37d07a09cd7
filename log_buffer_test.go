package observe

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// OBSERVE_LOG_BUFFER: on by default for files (stdout, stderr, a file), off
// for any other writer; the variable wins either way.
func TestLogBufferDefaults(t *testing.T) {
	var mem bytes.Buffer
	for _, c := range []struct {
		name string
		env  string
		w    Option
		want bool
	}{
		{"stdout by default", "", nil, true},
		{"a file", "", WithLogWriter(os.Stderr), true},
		{"another writer", "", WithLogWriter(&mem), false},
		{"another writer, on", "on", WithLogWriter(&mem), true},
		{"a file, off", "off", WithLogWriter(os.Stderr), false},
		{"a file, false", "FALSE", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadConfig(envOf(map[string]string{"OBSERVE_LOG_BUFFER": c.env}), []Option{c.w})
			if err != nil {
				t.Fatal(err)
			}
			if got := logBuffered(cfg); got != c.want {
				t.Errorf("buffered = %v, want %v", got, c.want)
			}
		})
	}
}

// Through Init, to a file: INFO lines wait, a WARN line writes them and
// itself before the call returns, Shutdown writes the rest and stops the
// background writer.
func TestLogBufferFileFlushedByWarnAndShutdown(t *testing.T) {
	t.Setenv("OBSERVE_ADMIN_ADDR", "off")
	t.Setenv("OBSERVE_LOG_BUFFER", "")
	ignore := goleak.IgnoreCurrent()
	f, err := os.Create(filepath.Join(t.TempDir(), "app.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	obs, err := Init(context.Background(), WithServiceName("svc"), WithLogWriter(f))
	if err != nil {
		t.Fatal(err)
	}
	read := func() string {
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	slog.Info("first")
	slog.Warn("second")
	got := read()
	if i, j := strings.Index(got, `"msg":"first"`), strings.Index(got, `"msg":"second"`); i < 0 || j < i {
		t.Fatalf("after WARN the file holds %q: want first then second", got)
	}
	slog.Info("third")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := obs.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(); !strings.Contains(got, `"msg":"third"`) {
		t.Fatalf("after Shutdown the file holds %q: the INFO line was not flushed", got)
	}
	if err := goleak.Find(ignore, goleak.IgnoreTopFunction("internal/poll.runtime_pollWait")); err != nil {
		t.Errorf("goroutines left after Shutdown: %v", err)
	}
}
