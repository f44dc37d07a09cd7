package observe

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/observekit/observe/internal/tracing"
	"github.com/observekit/observe/middleware"
)

// The RED table: a route's row after one sampler tick, with its figures,
// its slowest held trace and exemplars that point at held traces.
func TestStatusREDTable(t *testing.T) {
	o, err := Init(context.Background(), WithAdminAddr("off"), WithLogWriter(io.Discard), WithServiceName("red"))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Shutdown(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slow/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "9" {
			time.Sleep(200 * time.Millisecond)
			http.Error(w, "boom", http.StatusInternalServerError)
		}
	})
	h := middleware.HTTP(mux)
	o.red.Sample() // the baseline, before the traffic (Start's own may come later)
	for i := range 10 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/slow/"+string(rune('0'+i)), nil))
	}
	o.red.Sample()
	doc := o.redDoc()
	if len(doc.Routes) != 1 {
		t.Fatalf("routes: %+v", doc.Routes)
	}
	r := doc.Routes[0]
	if r.Kind != "http_server" || r.Route != "/slow/{id}" || r.M1.Count != 10 || r.M5.Count != 10 || r.M1.ErrorRatio != 0.1 || !r.ErrorsInTraces {
		t.Fatalf("row %+v", r)
	}
	if r.M1.P99 == nil || *r.M1.P99 < 100 || r.M1.P50 == nil || *r.M1.P50 > 25 || len(r.Spark.Rate) < 1 {
		t.Fatalf("quantiles/spark: p50 %v p99 %v spark %+v", r.M1.P50, r.M1.P99, r.Spark)
	}
	slow := o.tracing.Store().Summaries(tracing.TraceFilter{Route: "/slow/{id}", MinDuration: 150 * time.Millisecond})
	if len(slow) != 1 || r.SlowestTrace != slow[0].TraceID {
		t.Fatalf("slowest trace %q, want the 200 ms one %+v", r.SlowestTrace, slow)
	}
	if len(r.Exemplars) == 0 {
		t.Fatalf("no exemplar")
	}
	for _, ex := range r.Exemplars {
		id, err := parseTraceID(ex.TraceID)
		if err != nil || len(o.tracing.Store().Trace(id)) == 0 {
			t.Fatalf("exemplar %+v points at no held trace", ex)
		}
	}
}
