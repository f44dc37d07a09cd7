package logging_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"

	"github.com/observekit/observe"
	"github.com/observekit/observe/logging"
)

// untimed drops the time field, and observe's own named lines (health
// changes at Shutdown), so the examples' output is stable.
type untimed struct{ w io.Writer }

var timeField = regexp.MustCompile(`"time":"[^"]*",`)

func (u untimed) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(`"logger":"observe.`)) {
		return len(p), nil
	}
	_, err := u.w.Write(timeField.ReplaceAll(p, nil))
	return len(p), err
}

// Named loggers have levels of their own, changeable at runtime with
// PUT /loglevel on the admin endpoints; "db" covers "db.pool" unless
// "db.pool" has its own.
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

	// What `curl -X PUT -d '{"logger":"db","level":"debug"}' localhost:9464/loglevel` does
	// (without OBSERVE_ADMIN_TOKEN, only loopback clients may).
	req := httptest.NewRequest("PUT", "/loglevel", strings.NewReader(`{"logger":"db","level":"debug"}`))
	req.RemoteAddr = "127.0.0.1:40000"
	obs.AdminHandler().ServeHTTP(httptest.NewRecorder(), req)

	pool.Debug("conn acquired", "conn", 3)
	// Output:
	// {"level":"WARN","msg":"log level changed","service.name":"checkout","who":"127.0.0.1:40000","target":"db","from":"info","to":"debug"}
	// {"level":"DEBUG","msg":"conn acquired","service.name":"checkout","logger":"db.pool","conn":3}
}

// Sampling keeps a fraction of DEBUG and INFO lines; WARN and ERROR are
// always kept, and so is every line of a sampled trace.
func ExampleSampleRates() {
	obs, err := observe.Init(context.Background(),
		observe.WithServiceName("checkout"),
		observe.WithLogWriter(untimed{os.Stdout}),
		observe.WithAdminAddr("off"),
		observe.WithLogSampling(logging.SampleRates{Debug: 0.1, Info: 0.5})) // OBSERVE_LOG_SAMPLING=debug=0.1,info=0.5
	if err != nil {
		panic(err)
	}
	defer obs.Shutdown(context.Background())
	slog.Warn("disk almost full", "free_mb", 120)
	// Output:
	// {"level":"WARN","msg":"disk almost full","service.name":"checkout","free_mb":120}
}

func ExampleParseLevel() {
	l, err := logging.ParseLevel("WARNING")
	if err != nil {
		panic(err)
	}
	fmt.Println(l)
	// Output: WARN
}
