package observe

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/observekit/observe/middleware"
)

// Observe's own health on the page counts series-limit overflows per
// metric, as observe_metric_overflow_total does.
func TestStatusShowsMetricOverflows(t *testing.T) {
	o, err := Init(context.Background(), WithLogWriter(io.Discard), WithAdminAddr("off"), WithMetricSeriesLimit(3))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Shutdown(context.Background())
	doc := func() statusDoc {
		_, body := adminGet(t, o.AdminHandler(), "/debug/status")
		var d statusDoc
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := doc(); len(d.Self.MetricOverflows) != 0 {
		t.Fatalf("overflows before any traffic: %v", d.Self.MetricOverflows)
	}
	h := middleware.HTTP(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), middleware.WithObserver(o))
	for i := range 10 {
		// Ten methods-and-routes combinations against a cap of 3.
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest([]string{"GET", "POST", "PUT", "DELETE", "PATCH"}[i%5], fmt.Sprintf("/x%d", i), nil))
	}
	if d := doc(); d.Self.MetricOverflows["http_server_request_duration_seconds"] == 0 {
		t.Errorf("no overflow of http_server_request_duration_seconds on the page: %v", d.Self.MetricOverflows)
	}
}
