//go:build unix

package bench

import (
	"context"
	"github.com/observekit/observe/bench/internal/peer"
	"log/slog"
	"net/http"
	"os"
	"testing"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/metrics"
	"github.com/observekit/observe/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// BenchmarkRequestHTTP is one request through the whole middleware at
// default settings against the usual peer stack doing the same work, in the
// same run (cd bench && go test -run '^$' -bench RequestHTTP -benchmem):
//
//   - observe: observe.Init with its defaults (parentbased_always_on, spans
//     kept in process, RED metrics with exemplars, the access log line, log
//     lines to a file, so buffered) and middleware.HTTP;
//   - peer: otelhttp with the OTel SDK (parentbased_always_on, batch
//     processor to a discarding exporter, no otelhttp metrics), promhttp's
//     duration histogram and in-flight gauge, and an slog JSONHandler access
//     line with trace_id and span_id, written to the same kind of file (slog
//     writes each line at once: its default);
//   - bare: the ServeMux alone.
//
// Both write their lines to /dev/null, so the write system call is counted
// as a service writing to stdout pays it, without a disk in the way.
func BenchmarkRequestHTTP(b *testing.B) {
	devnull := func(b *testing.B) *os.File {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = f.Close() })
		return f
	}
	b.Run("observe", func(b *testing.B) {
		for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER",
			"OTEL_PROPAGATORS", "PYROSCOPE_SERVER_ADDRESS", "OBSERVE_ACCESS_LOG", "OBSERVE_LOG_BUFFER"} {
			b.Setenv(k, "")
		}
		obs, err := observe.Init(context.Background(), observe.WithServiceName("bench"),
			observe.WithAdminAddr("off"), observe.WithLogWriter(devnull(b)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = obs.Shutdown(context.Background()) })
		runTraceHTTP(b, middleware.HTTP(traceMux()), "")
	})
	b.Run("peer", func(b *testing.B) {
		log := slog.New(slog.NewJSONHandler(devnull(b), nil))
		runTraceHTTP(b, peerStack(b, traceMux(), log), "")
	})
	b.Run("bare", func(b *testing.B) { runTraceHTTP(b, traceMux(), "") })
}

// peerStack is bench/cmd/loadpeer's instrumentation around next.
func peerStack(b *testing.B, next http.Handler, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_server_request_duration_seconds", Help: "Duration.", Buckets: metrics.DefaultDurationBuckets,
	}, []string{"method", "code"})
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{Name: "http_server_active_requests", Help: "In flight."})
	reg.MustRegister(duration, inFlight)
	h := peer.AccessLog(next, log)
	h = promhttp.InstrumentHandlerInFlight(inFlight, promhttp.InstrumentHandlerDuration(duration, h))
	return newOtelSDK(b).handler(h, false)
}
