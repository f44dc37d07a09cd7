package observe

import (
	"context"
	"github.com/observekit/observe/internal/testbackend"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/observekit/observe/middleware"
)

// BenchmarkTraceProfiles is the cost of the profile of a trace: requests
// through the middleware to a handler that computes for about 50 µs, with
// span↔profile links off; with the pprof labels only; and with the labels
// and the ring's continuous CPU profiling at 100 Hz (profiles cut every
// 10 s), as WithProfileLinks(true) runs. Compare them within one run.
func BenchmarkTraceProfiles(b *testing.B) {
	for _, v := range []struct {
		name       string
		links, cpu bool
	}{{"off", false, false}, {"labels-only", true, false}, {"labels+cpu-profiling", true, true}} {
		on := v.links
		b.Run(v.name, func(b *testing.B) {
			for _, v := range []string{"PYROSCOPE_SERVER_ADDRESS", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "OBSERVE_PROFILE_LINKS"} {
				b.Setenv(v, "")
			}
			o, err := Init(context.Background(), WithLogWriter(io.Discard), WithAdminAddr("off"), WithProfileLinks(on), WithAccessLog(false))
			if err != nil {
				b.Fatal(err)
			}
			defer o.Shutdown(context.Background())
			if !v.cpu {
				// The labels alone: the ring's CPU profiling stopped.
				_ = o.cpuCollector.Stop(context.Background())
			}
			mux := http.NewServeMux()
			mux.HandleFunc("GET /work/{id}", func(w http.ResponseWriter, r *http.Request) {
				fixedWork(60000)
			})
			h := middleware.HTTP(mux, middleware.WithObserver(o))
			req := httptest.NewRequest(http.MethodGet, "/work/1", nil)
			b.ReportAllocs()
			cpu0 := testbackend.ProcessCPU()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
			// The process's CPU time, the profiler's signals and encoding
			// included: on a shared machine a steadier figure than ns/op.
			b.ReportMetric(float64(testbackend.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// fixedWork is a fixed amount of computation (about 50 µs here).
//
//go:noinline
func fixedWork(n int) uint64 {
	var x uint64 = 1
	for i := range n {
		x = x*6364136223846793005 + uint64(i)
	}
	return x
}
