package observe_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A collector registered on Registerer is served on the admin /metrics with
// observe's own families.
func TestRegistererServesOwnMetrics(t *testing.T) {
	cleanEnv(t)
	obs, _ := initObs(t)
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "shop_orders_total", Help: "Orders."})
	obs.Registerer().MustRegister(c)
	c.Add(3)
	rec := httptest.NewRecorder()
	obs.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(body), "\nshop_orders_total 3\n") || !strings.Contains(string(body), "target_info") {
		t.Fatalf("/metrics lacks the user's counter or observe's families:\n%.2000s", body)
	}
}

// With metrics off, registering still works (nothing serves it).
func TestRegistererWithMetricsOff(t *testing.T) {
	cleanEnv(t)
	t.Setenv("OTEL_SDK_DISABLED", "true")
	obs, _ := initObs(t)
	r := obs.Registerer()
	if r == nil || r != obs.Registerer() {
		t.Fatal("Registerer with metrics off: nil, or a new registry per call")
	}
	if err := r.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: "shop_orders_total", Help: "Orders."})); err != nil {
		t.Fatalf("Register with metrics off: %v", err)
	}
}
