package logging_test

import (
	"io"
	"log/slog"

	"github.com/observekit/observe/internal/logging"
)

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
