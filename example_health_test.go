package observe_test

import (
	"context"
	"database/sql"
	"errors"
	"log"
	"net/http"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/middleware"
)

// A service that warms up before taking traffic, reports its database as
// a readiness check, and drains its server on SIGTERM.
func ExampleObserver_ShutdownOnSignal() {
	ctx := context.Background()
	obs, err := observe.Init(ctx, observe.WithServiceName("checkout"), observe.WithStartupGate())
	if err != nil {
		log.Fatal(err)
	}
	var db *sql.DB // opened elsewhere
	obs.AddReadinessCheck("db", db.PingContext, observe.CheckTimeout(500*time.Millisecond))

	srv := &http.Server{Addr: ":8080", Handler: middleware.HTTP(http.NotFoundHandler()), ReadHeaderTimeout: 5 * time.Second}
	obs.AddServer(srv)
	go func() {
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			log.Print(err)
		}
	}()
	// … warm caches …
	obs.MarkStarted()

	// Readiness 503, the drain delay, srv.Shutdown, telemetry flushed.
	if err := obs.ShutdownOnSignal(ctx, 0); err != nil {
		log.Print(err)
	}
}
