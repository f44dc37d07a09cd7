package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/testbackend"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// A trace read from the status page's GET /debug/traces/{id}, posted as is
// to a real Jaeger's OTLP/HTTP receiver (JSON encoding), comes back from
// Jaeger's query API with the same spans: IDs, parents, names, service,
// attributes of each type. The format is genuine OTLP/JSON.
func TestStatusTraceIsOTLPJSONThatJaegerAccepts(t *testing.T) {
	j := testbackend.StartJaeger(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_SDK_DISABLED", "")
	t.Setenv("OBSERVE_ADMIN_TOKEN", "")
	obs, err := observe.Init(context.Background(), observe.WithServiceName("status-roundtrip"),
		observe.WithAdminAddr("off"), observe.WithLogWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Shutdown(context.Background())

	mux := http.NewServeMux()
	mux.HandleFunc("GET /carts/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, span := otel.Tracer("roundtrip").Start(r.Context(), "price cart")
		span.SetAttributes(attribute.Int64("cart.items", 3), attribute.Bool("cart.member", true),
			attribute.Float64("cart.total", 41.5), attribute.StringSlice("cart.skus", []string{"a", "b"}))
		span.AddEvent("coupon applied", trace.WithAttributes(attribute.String("coupon", "WINTER")))
		span.SetStatus(codes.Error, "price service slow")
		span.End()
		io.WriteString(w, "ok")
	})
	middleware.HTTP(mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/carts/7", nil))

	admin := obs.AdminHandler()
	get := func(path string) []byte {
		req := httptest.NewRequest("GET", path, nil)
		req.RemoteAddr, req.Host = "127.0.0.1:1234", "localhost:9464"
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		return rec.Body.Bytes()
	}
	var list struct {
		Traces []struct {
			TraceID string `json:"trace_id"`
		} `json:"traces"`
	}
	if err := json.Unmarshal(get("/debug/traces?route=/carts/{id}"), &list); err != nil || len(list.Traces) != 1 {
		t.Fatalf("traces: %v %+v", err, list)
	}
	id := list.Traces[0].TraceID
	body := get("/debug/traces/" + id)
	var ours struct {
		ResourceSpans []struct {
			ScopeSpans []struct {
				Spans []struct {
					SpanID       string `json:"spanId"`
					ParentSpanID string `json:"parentSpanId"`
					Name         string `json:"name"`
				} `json:"spans"`
			} `json:"scopeSpans"`
		} `json:"resourceSpans"`
	}
	if err := json.Unmarshal(body, &ours); err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{} // span ID → name, parent
	for _, rs := range ours.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				want[s.SpanID] = [2]string{s.Name, s.ParentSpanID}
			}
		}
	}
	if len(want) != 2 {
		t.Fatalf("spans in the OTLP/JSON: %v", want)
	}

	resp, err := http.Post(j.OTLPHTTP+"/v1/traces", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("Jaeger's OTLP/HTTP receiver refused the trace: %d %s", resp.StatusCode, answer)
	}
	got := j.WaitTrace(t, id, 2, 30*time.Second)
	if len(got.Spans) != 2 {
		t.Fatalf("Jaeger holds %d spans", len(got.Spans))
	}
	for _, s := range got.Spans {
		w, ok := want[s.SpanID]
		if !ok || s.OperationName != w[0] || s.Parent() != w[1] || s.TraceID != id {
			t.Errorf("span %s %q parent %q: want %v", s.SpanID, s.OperationName, s.Parent(), w)
		}
		if got.Service(&s) != "status-roundtrip" {
			t.Errorf("service %q", got.Service(&s))
		}
		switch s.OperationName {
		case "GET /carts/{id}":
			if s.Tag("http.route") != "/carts/{id}" || s.Tag("http.response.status_code") != "200" || s.Tag("span.kind") != "server" {
				t.Errorf("server span tags: %+v", s.Tags)
			}
		case "price cart":
			if s.Tag("cart.items") != "3" || s.Tag("cart.member") != "true" || s.Tag("cart.total") != "41.5" ||
				!strings.Contains(s.Tag("cart.skus"), "a") || s.Tag("error") != "true" || s.Tag("otel.status_description") != "price service slow" {
				t.Errorf("child span tags: %+v", s.Tags)
			}
		}
	}
}
