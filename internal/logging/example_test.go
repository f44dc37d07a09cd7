package logging_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"regexp"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/logging"
)

// untimed drops the time field, and observe's own lines (health changes at
// Shutdown), so the examples' output is stable.
type untimed struct{ w io.Writer }

var timeField = regexp.MustCompile(`"time":"[^"]*",`)

func (u untimed) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(`"logger":"observe.`)) {
		return len(p), nil
	}
	_, err := u.w.Write(timeField.ReplaceAll(p, nil))
	return len(p), err
}

// Named loggers have levels of their own, changeable at runtime; "db"
// covers "db.pool" unless "db.pool" has its own.
func ExampleNamed() {
	pool := logging.Named("db.pool") // before Init too: it follows the current observe
	obs, err := observe.Init(context.Background(),
		observe.WithServiceName("checkout"),
		observe.WithLogWriter(untimed{os.Stdout}),
		observe.WithAdminAddr("off"))
	if err != nil {
		panic(err)
	}
	defer obs.Shutdown(context.Background())

	pool.Debug("not shown")
	obs.Levels().Set("db", slog.LevelDebug, 0, nil) // PUT /loglevel {"logger":"db","level":"debug"}
	pool.Debug("conn acquired", "conn", 3)
	// Output:
	// {"level":"DEBUG","msg":"conn acquired","service.name":"checkout","logger":"db.pool","conn":3}
}

// Sampling keeps a fraction of DEBUG and INFO lines; WARN and ERROR are
// always kept, and so is every line of a sampled trace.
func ExampleSampleRates() {
	rates, err := logging.ParseSampleRates("debug=0.1,info=0.5") // OBSERVE_LOG_SAMPLING
	if err != nil {
		panic(err)
	}
	h := logging.New(logging.Options{Writer: io.Discard, Sampling: rates})
	log := slog.New(h)
	for i := 0; i < 1000; i++ {
		log.Info("sampled")
	}
	log.Warn("always kept")
	_ = h.Dropped() // observe_logs_dropped_total
}
