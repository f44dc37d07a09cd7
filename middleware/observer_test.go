package middleware_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/middleware"
)

// Two Observers in one process: each middleware given WithObserver reports
// its requests to its own Observer's spans and metrics, never to the other;
// a middleware without it follows the latest Init.
func TestWithObserverTwoObserversInOneProcess(t *testing.T) {
	t.Setenv("OBSERVE_ADMIN_ADDR", "off")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_SDK_DISABLED", "")
	newObs := func(name string) *observe.Observer {
		obs, err := observe.Init(context.Background(), observe.WithServiceName(name), observe.WithLogWriter(io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = obs.Shutdown(ctx)
		})
		return obs
	}
	a, b := newObs("service-a"), newObs("service-b")
	mux := http.NewServeMux()
	for _, p := range []string{"/a", "/b", "/latest"} {
		mux.HandleFunc("GET "+p, func(http.ResponseWriter, *http.Request) {})
	}
	srvA := httptest.NewServer(middleware.HTTP(mux, middleware.WithObserver(a)))
	defer srvA.Close()
	srvB := httptest.NewServer(middleware.HTTP(mux, middleware.WithObserver(b)))
	defer srvB.Close()
	srvLatest := httptest.NewServer(middleware.HTTP(mux))
	defer srvLatest.Close()
	for _, u := range []string{srvA.URL + "/a", srvA.URL + "/a", srvB.URL + "/b", srvLatest.URL + "/latest"} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	spans := func(obs *observe.Observer) map[string]int {
		out := map[string]int{}
		for _, s := range instance.Of(obs).Tracing.Store().Spans() {
			out[s.Name()]++
		}
		return out
	}
	if got := spans(a); len(got) != 1 || got["GET /a"] != 2 {
		t.Errorf("A's spans %v, want 2 of GET /a only", got)
	}
	if got := spans(b); len(got) != 2 || got["GET /b"] != 1 || got["GET /latest"] != 1 {
		t.Errorf("B's spans %v, want GET /b and (latest Init) GET /latest", got)
	}
	scrape := func(obs *observe.Observer) string {
		rec := httptest.NewRecorder()
		obs.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	count := func(body, route string) bool {
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "http_server_request_duration_seconds_count{") && strings.Contains(l, `http_route="`+route+`"`) {
				return true
			}
		}
		return false
	}
	ma, mb := scrape(a), scrape(b)
	if !count(ma, "/a") || count(ma, "/b") || count(ma, "/latest") {
		t.Errorf("A's metrics hold other routes, or not its own:\n%s", ma)
	}
	if count(mb, "/a") || !count(mb, "/b") || !count(mb, "/latest") {
		t.Errorf("B's metrics hold A's route, or not its own:\n%s", mb)
	}
}
