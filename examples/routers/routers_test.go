package main

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
)

// Each router's matched template is the route of the metric and the span
// name; the raw path is neither.
func TestRouteTemplates(t *testing.T) {
	t.Setenv("OBSERVE_ADMIN_ADDR", "off")
	obs, err := observe.Init(context.Background(), observe.WithServiceName("routers-test"), observe.WithLogWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = obs.Shutdown(ctx)
	}()
	srv := httptest.NewServer(handler())
	defer srv.Close()
	for _, p := range []string{"/chi/users/42", "/chi/users/42/orders/7", "/mux/users/42", "/chi/nothing/here"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.RemoteAddr = "127.0.0.1:1234"
	obs.AdminHandler().ServeHTTP(rec, req)
	body := rec.Body.String()
	for _, want := range []string{
		`http_route="/chi/users/{id}"`,
		`http_route="/chi/users/{id}/orders/{order}"`,
		`http_route="/mux/users/{id}"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "/users/42") || strings.Contains(body, "nothing/here") {
		t.Error("a raw path became a label value")
	}
	names := map[string]bool{}
	for _, s := range instance.Of(obs).Tracing.Store().Spans() {
		names[s.Name()] = true
	}
	for _, want := range []string{"GET /chi/users/{id}", "GET /mux/users/{id}"} {
		if !names[want] {
			t.Errorf("no span %q (spans %v)", want, names)
		}
	}
}
