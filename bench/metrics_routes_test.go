package bench

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/gorilla/mux"
	"github.com/observekit/observe/internal/metrics"
	"github.com/observekit/observe/internal/wiring"
	"github.com/observekit/observe/middleware"
	dto "github.com/prometheus/client_model/go"
)

// Third-party routers report their route templates through
// middleware.RouteFrom. chi and gorilla/mux both hand their handlers a copy
// of the request (r.WithContext), so no ServeMux pattern reaches the HTTP
// middleware: without the adapter the route is "", never the raw path.

// metricsOnly installs fresh metrics (and no tracing) for a test.
func metricsOnly(tb testing.TB) *metrics.Metrics {
	tb.Helper()
	m, err := metrics.New(metrics.Config{DisableRuntimeCollectors: true})
	if err != nil {
		tb.Fatal(err)
	}
	prevM, prevT, prevL := wiring.Metrics.Load(), wiring.Tracing.Load(), slog.Default()
	wiring.Metrics.Store(m)
	wiring.Tracing.Store(nil)
	slog.SetDefault(slog.New(slog.DiscardHandler)) // the panic tests' ERROR lines
	tb.Cleanup(func() { wiring.Metrics.Store(prevM); wiring.Tracing.Store(prevT); slog.SetDefault(prevL) })
	return m
}

func metricsRoutes(t *testing.T, m *metrics.Metrics) map[string]uint64 {
	t.Helper()
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != metrics.HTTPServerDuration {
			continue
		}
		for _, mm := range mf.GetMetric() {
			out[metricsLabel(mm, "http_route")+" "+metricsLabel(mm, "http_response_status_code")] += mm.GetHistogram().GetSampleCount()
		}
	}
	return out
}

func metricsLabel(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

func serve(h http.Handler, method, target string) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Code
}

func TestMetricsRouteChi(t *testing.T) {
	m := metricsOnly(t)
	r := chi.NewRouter()
	r.Use(middleware.RouteFrom(func(r *http.Request) string {
		return chi.RouteContext(r.Context()).RoutePattern()
	}))
	r.Get("/users/{id}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	r.Route("/orgs/{org}", func(r chi.Router) {
		r.Get("/repos/{repo}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
		r.Get("/boom", func(w http.ResponseWriter, r *http.Request) { panic("bug") })
	})
	h := middleware.HTTP(r)
	serve(h, "GET", "/users/42")
	serve(h, "GET", "/users/43")
	serve(h, "GET", "/orgs/acme/repos/observe")
	if code := serve(h, "GET", "/orgs/acme/boom"); code != 500 {
		t.Errorf("panic: %d", code)
	}
	serve(h, "GET", "/nope/42")

	// Without the adapter: no pattern reaches us, the route is "".
	bare := chi.NewRouter()
	bare.Get("/bare/{id}", func(w http.ResponseWriter, r *http.Request) {})
	serve(middleware.HTTP(bare), "GET", "/bare/42")

	got := metricsRoutes(t, m)
	want := map[string]uint64{
		"/users/{id} 200":              2,
		"/orgs/{org}/repos/{repo} 200": 1,
		"/orgs/{org}/boom 500":         1,
		" 404":                         1,
		" 200":                         1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q: %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	for k := range got {
		for _, raw := range []string{"42", "43", "acme", "observe", "nope"} {
			if strings.Contains(k, raw) {
				t.Errorf("raw path as a route: %q", k)
			}
		}
	}
}

func TestMetricsRouteGorillaMux(t *testing.T) {
	m := metricsOnly(t)
	r := mux.NewRouter()
	r.Use(middleware.RouteFrom(func(r *http.Request) string {
		if cr := mux.CurrentRoute(r); cr != nil {
			t, _ := cr.GetPathTemplate()
			return t
		}
		return ""
	}))
	r.HandleFunc("/users/{id:[0-9]+}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }).Methods("GET")
	api := r.PathPrefix("/api").Subrouter()
	api.HandleFunc("/items/{item}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	h := middleware.HTTP(r)
	serve(h, "GET", "/users/42")
	serve(h, "GET", "/api/items/widget")
	serve(h, "GET", "/users/not-a-number") // gorilla's 404: no route, no middleware chain

	got := metricsRoutes(t, m)
	want := map[string]uint64{
		"/users/{id:[0-9]+} 200": 1,
		"/api/items/{item} 202":  1,
		" 404":                   1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q: %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("series: %v", got)
	}
}
