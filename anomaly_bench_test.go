package observe

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"

	"github.com/observekit/observe/internal/evidence"
	"github.com/observekit/observe/middleware"
)

// BenchmarkAnomalyRequestPath: a request through the HTTP middleware with
// anomaly detection off and on, in the same run (detection reads the
// registry off the request path: the two should cost the same). Two more
// cases show what an active anomaly costs: on another route (the middleware
// matches the ServeMux early for the sampler), and on this route (the
// response itself: its requests are sampled and recorded, at ratio 0.01
// otherwise).
//
//	go test -run '^$' -bench BenchmarkAnomalyRequestPath -count 5 .
func BenchmarkAnomalyRequestPath(b *testing.B) {
	for _, c := range []struct {
		name   string
		on     bool
		listed []evidence.Route
	}{
		{"detection=off", false, nil},
		{"detection=on", true, nil},
		{"detection=on/anomaly-elsewhere", true, []evidence.Route{{Kind: "http_server", Route: "/orders/{id}"}}},
		{"detection=on/anomaly-here", true, []evidence.Route{{Kind: "http_server", Route: "/users/{id}"}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
			b.Setenv("OTEL_TRACES_SAMPLER_ARG", "0.01")
			o, err := Init(context.Background(), WithLogWriter(io.Discard), WithAccessLog(false), WithAdminAddr("off"), WithAnomalyDetection(c.on))
			if err != nil {
				b.Fatal(err)
			}
			defer o.Shutdown(context.Background())
			if (o.anomaly != nil) != c.on {
				b.Fatalf("detection running: %v", o.anomaly != nil)
			}
			evidence.Set(evidence.List{Traces: true, Logs: true, Routes: c.listed})
			defer evidence.Set(evidence.List{})
			mux := http.NewServeMux()
			mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
			h := middleware.HTTP(mux)
			req := httptest.NewRequest("GET", "/users/42", nil)
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			// CPU time of this thread too: on a loaded machine wall time
			// counts the waits for a CPU, which have nothing to do with us.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0 := benchThreadCPU()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
			if cpu := benchThreadCPU() - cpu0; cpu > 0 {
				b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

type benchWriter struct{ h http.Header }

func (d *benchWriter) Header() http.Header         { return d.h }
func (d *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *benchWriter) WriteHeader(int)             {}

// benchThreadCPU is the calling OS thread's CPU time in nanoseconds (0 where
// RUSAGE_THREAD is not available).
func benchThreadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD on Linux */, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
