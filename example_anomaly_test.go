package observe_test

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/observekit/observe"
)

// A hook for paging and a circuit breaker: called once when an anomaly
// starts; its context ends with the anomaly.
func ExampleObserver_OnAnomaly() {
	ctx := context.Background()
	obs, err := observe.Init(ctx, observe.WithServiceName("checkout"), observe.WithAdminAddr("off"), observe.WithLogWriter(io.Discard))
	if err != nil {
		log.Fatal(err)
	}
	defer obs.Shutdown(ctx)

	obs.OnAnomaly(func(ctx context.Context, a observe.Anomaly) {
		slog.ErrorContext(ctx, "paging on-call", "route", a.Route, "kind", a.Kind,
			"baseline", a.Baseline, "observed", a.Observed, "unit", a.Unit, "version", a.Version)
		// breaker.Open(a.Route)
		<-ctx.Done() // the anomaly ended, or the service is shutting down
		// breaker.Close(a.Route)
	})
}
