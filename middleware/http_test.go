package middleware_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/observekit/observe/internal/metrics"
	"github.com/observekit/observe/internal/tracing"
	"github.com/observekit/observe/internal/wiring"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

const (
	incomingTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	incomingSpanID  = "00f067aa0ba902b7"
	incomingTP      = "00-" + incomingTraceID + "-" + incomingSpanID + "-01"
)

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHTTPServerSpanSemconv(t *testing.T) {
	env := setup(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !trace.SpanFromContext(r.Context()).IsRecording() {
			t.Error("handler context has no recording span")
		}
		_, _ = io.WriteString(w, "item")
	})
	r := httptest.NewRequest("GET", "http://shop.example:8080/api/items/42?color=red", nil)
	r.Header.Set("User-Agent", "test-agent/1.0")
	r.Header.Set("traceparent", incomingTP)
	r.RemoteAddr = "192.0.2.7:5555"
	if w := serve(middleware.HTTP(mux), r); w.Code != 200 || w.Body.String() != "item" {
		t.Fatalf("response %d %q", w.Code, w.Body.String())
	}
	s := env.span(t, trace.SpanKindServer)
	if s.Name() != "GET /api/items/{id}" {
		t.Errorf("span name %q", s.Name())
	}
	if s.SpanContext().TraceID().String() != incomingTraceID || s.Parent().SpanID().String() != incomingSpanID || !s.Parent().IsRemote() {
		t.Errorf("incoming traceparent not continued: trace %s parent %s", s.SpanContext().TraceID(), s.Parent().SpanID())
	}
	wantAttr(t, s, "http.request.method", "GET")
	wantAttr(t, s, "http.route", "/api/items/{id}")
	wantAttr(t, s, "http.response.status_code", 200)
	wantAttr(t, s, "url.path", "/api/items/42")
	wantAttr(t, s, "url.query", "color=red")
	wantAttr(t, s, "url.scheme", "http")
	wantAttr(t, s, "server.address", "shop.example")
	wantAttr(t, s, "server.port", 8080)
	wantAttr(t, s, "client.address", "192.0.2.7")
	wantAttr(t, s, "user_agent.original", "test-agent/1.0")
	wantAttr(t, s, "network.protocol.version", "1.1")
	noAttr(t, s, "error.type")
	if s.Status().Code != codes.Unset {
		t.Errorf("status %v", s.Status())
	}
	if got := env.metric(t, "http_server_request_duration_seconds"); !strings.Contains(got, "http_request_method=GET,http_response_status_code=200,http_route=/api/items/{id}") {
		t.Errorf("metric series: %s", got)
	}
}

func TestHTTPServerSpanNameWithoutRoute(t *testing.T) {
	env := setup(t)
	h := middleware.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	serve(h, httptest.NewRequest("POST", "/raw/path/123", nil))
	serve(h, httptest.NewRequest("PURGE", "/raw/path/123", nil))
	spans := env.spans(t, 2)
	if spans[0].Name() != "POST" {
		t.Errorf("no-route span name %q (a raw path must never be a span name)", spans[0].Name())
	}
	noAttr(t, spans[0], "http.route")
	if spans[1].Name() != "HTTP" {
		t.Errorf("non-standard method span name %q", spans[1].Name())
	}
	wantAttr(t, spans[1], "http.request.method", "_OTHER")
	wantAttr(t, spans[1], "http.request.method_original", "PURGE")
}

func TestHTTPServerStatusErrors(t *testing.T) {
	env := setup(t)
	mux := http.NewServeMux()
	for _, code := range []int{400, 404, 418, 500, 503} {
		mux.HandleFunc("GET /status/"+http.StatusText(code), func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) })
	}
	h := middleware.HTTP(mux)
	for _, code := range []int{400, 404, 418, 500, 503} {
		serve(h, httptest.NewRequest("GET", "/status/"+strings.ReplaceAll(http.StatusText(code), " ", "%20"), nil))
	}
	serve(h, httptest.NewRequest("GET", "/nowhere", nil)) // the mux's own 404
	spans := env.spans(t, 6)
	for _, s := range spans {
		code := attrs(s)["http.response.status_code"].AsInt64()
		isErr := s.Status().Code == codes.Error
		if code >= 500 {
			if !isErr {
				t.Errorf("%d: span not in error", code)
			}
			wantAttr(t, s, "error.type", metrics.StatusLabel(int(code)))
		} else {
			if isErr {
				t.Errorf("%d: a 4xx is not a server error", code)
			}
			noAttr(t, s, "error.type")
		}
	}
	if spans[5].Name() != "GET" {
		t.Errorf("unmatched request's span name %q", spans[5].Name())
	}
}

func TestHTTPServerPanic(t *testing.T) {
	env := setup(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boom", func(w http.ResponseWriter, r *http.Request) { panic("kaboom") })
	w := serve(middleware.HTTP(mux), httptest.NewRequest("GET", "/boom", nil))
	if w.Code != 500 {
		t.Fatalf("client got %d, want 500", w.Code)
	}
	s := env.span(t, trace.SpanKindServer)
	if s.Status().Code != codes.Error {
		t.Errorf("status %v", s.Status())
	}
	wantAttr(t, s, "error.type", "panic")
	wantAttr(t, s, "http.response.status_code", 500)
	if len(s.Events()) == 0 || s.Events()[0].Name != "exception" {
		t.Errorf("no exception event: %v", s.Events())
	}
	rec, ok := env.logs.find("panic in HTTP handler")
	if !ok {
		t.Fatal("no ERROR log for the panic")
	}
	if rec.level != slog.LevelError || !strings.Contains(rec.attrs["stack"], "TestHTTPServerPanic") || rec.sc.TraceID() != s.SpanContext().TraceID() {
		t.Errorf("panic log: level %v, trace %s (span's %s), stack %.80q", rec.level, rec.sc.TraceID(), s.SpanContext().TraceID(), rec.attrs["stack"])
	}
}

func TestHTTPServerAbortHandlerRepanics(t *testing.T) {
	env := setup(t)
	h := middleware.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }))
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler", p)
			}
		}()
		serve(h, httptest.NewRequest("GET", "/", nil))
	}()
	s := env.span(t, trace.SpanKindServer)
	wantAttr(t, s, "error.type", "http.ErrAbortHandler")
}

func TestHTTPServerPanicAfterWriteAbortsConnection(t *testing.T) {
	setup(t)
	srv := httptest.NewServer(middleware.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic("late")
	})))
	defer srv.Close()
	srv.Config.ErrorLog = nil
	resp, err := http.Get(srv.URL)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("a truncated response was delivered as complete")
	}
	srv.Client().CloseIdleConnections()
}

func TestHTTPServerB3Propagation(t *testing.T) {
	env := setup(t)
	h := middleware.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("b3", incomingTraceID+"-"+incomingSpanID+"-1")
	serve(h, r)
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-B3-TraceId", incomingTraceID)
	r.Header.Set("X-B3-SpanId", incomingSpanID)
	r.Header.Set("X-B3-Sampled", "1")
	serve(h, r)
	for _, s := range env.spans(t, 2) {
		if s.SpanContext().TraceID().String() != incomingTraceID || s.Parent().SpanID().String() != incomingSpanID {
			t.Errorf("b3 not continued: %s / %s", s.SpanContext().TraceID(), s.Parent().SpanID())
		}
	}
}

func TestHTTPServerSetRouteAndInnerMiddleware(t *testing.T) {
	env := setup(t)
	// A router reporting its own template.
	h := middleware.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !middleware.SetRoute(r.Context(), "/orders/{orderID}") {
			t.Error("SetRoute refused the middleware's context")
		}
	}))
	serve(h, httptest.NewRequest("DELETE", "/orders/9", nil))
	// A middleware between HTTP and the mux hands the mux a copy of the
	// request: the pattern must still be found.
	mux := http.NewServeMux()
	mux.HandleFunc("/users/{id}/avatar", func(w http.ResponseWriter, r *http.Request) {})
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), struct{}{}, 1)))
	})
	serve(middleware.HTTP(inner), httptest.NewRequest("GET", "/users/7/avatar", nil))
	serve(middleware.HTTP(mux), httptest.NewRequest("GET", "/users/7/avatar", nil))
	spans := env.spans(t, 3)
	if spans[0].Name() != "DELETE /orders/{orderID}" {
		t.Errorf("SetRoute span name %q", spans[0].Name())
	}
	if spans[2].Name() != "GET /users/{id}/avatar" {
		t.Errorf("mux span name %q", spans[2].Name())
	}
	if middleware.SetRoute(context.Background(), "/x") {
		t.Error("SetRoute accepted a foreign context")
	}
}

func TestHTTPServerCapturedHeaders(t *testing.T) {
	env := setup(t)
	h := middleware.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Cache", "HIT")
		w.Header().Set("Set-Cookie", "sid=abc")
	}), middleware.WithCapturedHeaders([]string{"x-request-id", "Authorization"}, []string{"X-Cache", "set-cookie"}))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Request-Id", "req-1")
	r.Header.Set("Authorization", "Bearer abc")
	r.Header.Set("X-Other", "not captured")
	serve(h, r)
	s := env.span(t, trace.SpanKindServer)
	wantAttr(t, s, "http.request.header.x-request-id", []string{"req-1"})
	wantAttr(t, s, "http.response.header.x-cache", []string{"HIT"})
	noAttr(t, s, "http.request.header.x-other")
	// Sensitive ones are captured and masked by the redaction policy on the
	// way out (see tracing's redaction tests); here the raw span has them.
	if _, ok := attrs(s)["http.request.header.authorization"]; !ok {
		t.Error("allow-listed Authorization not captured")
	}
}

func TestHTTPServerCapturedSensitiveHeadersRedacted(t *testing.T) {
	env := setup(t)
	p, err := tracing.New(context.Background(), tracing.Config{Redactor: headerPolicy{}})
	if err != nil {
		t.Fatal(err)
	}
	wiring.Tracing.Store(p)
	defer p.Shutdown(context.Background())
	_ = env
	h := middleware.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		middleware.WithCapturedHeaders([]string{"Authorization", "X-Request-Id"}, nil))
	r := httptest.NewRequest("GET", "/?token=abc&q=1", nil)
	r.Header.Set("Authorization", "Bearer abc")
	r.Header.Set("X-Request-Id", "req-1")
	serve(h, r)
	s := p.Store().Spans()[0]
	wantAttr(t, s, "http.request.header.authorization", []string{"[REDACTED]"})
	wantAttr(t, s, "http.request.header.x-request-id", []string{"req-1"})
	wantAttr(t, s, "url.query", "token=%5BREDACTED%5D&q=1")
}

func TestHTTPFilterAndDisabled(t *testing.T) {
	env := setup(t)
	calls := 0
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if trace.SpanFromContext(r.Context()).IsRecording() {
			t.Error("filtered request got a span")
		}
	})
	h := middleware.HTTP(next, middleware.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/healthz" }))
	serve(h, httptest.NewRequest("GET", "/healthz", nil))
	if calls != 1 || len(env.tp.Store().Spans()) != 0 {
		t.Fatalf("filter: calls %d spans %d", calls, len(env.tp.Store().Spans()))
	}
	// Before Init (or OTEL_SDK_DISABLED): a pass-through.
	wiring.Tracing.Store(nil)
	wiring.Metrics.Store(nil)
	serve(middleware.HTTP(next), httptest.NewRequest("GET", "/x", nil))
	if calls != 2 {
		t.Fatalf("disabled middleware did not call the handler")
	}
}

func TestHTTPUnsampledParent(t *testing.T) {
	env := setup(t)
	var sc trace.SpanContext
	h := middleware.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc = trace.SpanContextFromContext(r.Context())
	}))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("traceparent", "00-"+incomingTraceID+"-"+incomingSpanID+"-00")
	serve(h, r)
	if sc.TraceID().String() != incomingTraceID || sc.IsSampled() || !sc.IsValid() {
		t.Fatalf("unsampled parent: handler span context %v", sc)
	}
	if len(env.tp.Store().Spans()) != 0 {
		t.Fatal("an unsampled request's span was stored")
	}
}

type headerPolicy struct{}

func (headerPolicy) String(s string) string { return s }

func (headerPolicy) KeyValue(kv attribute.KeyValue) attribute.KeyValue {
	k := strings.ToLower(string(kv.Key))
	if strings.HasSuffix(k, "authorization") || k == "token" {
		if strings.HasPrefix(k, "http.") {
			return kv.Key.StringSlice([]string{"[REDACTED]"})
		}
		return kv.Key.String("[REDACTED]")
	}
	return kv
}

// attrSampler is a user sampler reading the attributes a span starts with.
type attrSampler struct {
	mu   sync.Mutex
	seen []map[string]string
}

func (s *attrSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	m := map[string]string{}
	for _, kv := range p.Attributes {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	s.mu.Lock()
	s.seen = append(s.seen, m)
	s.mu.Unlock()
	return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample}
}

func (s *attrSampler) Description() string { return "attrSampler" }

// A sampler of the user's own sees the semantic-convention attributes at
// span creation, as the conventions require; with observe's own samplers
// (which never read them) they are handed over at the end instead, and the
// finished span is the same.
func TestHTTPStartAttributesForSamplers(t *testing.T) {
	setup(t)
	s := &attrSampler{}
	p, err := tracing.New(context.Background(), tracing.Config{Sampler: s})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	if !p.StartAttributesObserved() {
		t.Fatal("a user sampler must see start attributes")
	}
	wiring.Tracing.Store(p)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /a/{x}", func(w http.ResponseWriter, r *http.Request) {})
	serve(middleware.HTTP(mux), httptest.NewRequest("GET", "http://h.example/a/1?q=2", nil))
	s.mu.Lock()
	seen := s.seen[0]
	s.mu.Unlock()
	for _, k := range []string{"http.request.method", "url.path", "url.scheme", "url.query", "server.address"} {
		if seen[k] == "" {
			t.Errorf("sampler did not see %s at creation: %v", k, seen)
		}
	}
	withSampler := attrs(p.Store().Spans()[0])

	p2, _ := tracing.New(context.Background(), tracing.Config{})
	defer p2.Shutdown(context.Background())
	if p2.StartAttributesObserved() {
		t.Fatal("observe's default sampler does not read attributes")
	}
	wiring.Tracing.Store(p2)
	serve(middleware.HTTP(mux), httptest.NewRequest("GET", "http://h.example/a/1?q=2", nil))
	deferred := attrs(p2.Store().Spans()[0])
	if len(deferred) != len(withSampler) {
		t.Fatalf("attributes differ:\n%v\n%v", withSampler, deferred)
	}
	for k, v := range withSampler {
		if deferred[k].Emit() != v.Emit() && k != "client.address" {
			t.Errorf("%s: %s vs %s", k, v.Emit(), deferred[k].Emit())
		}
	}
}
