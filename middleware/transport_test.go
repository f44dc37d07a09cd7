package middleware_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe/internal/testbackend"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// tracedServer is an instrumented server, so a client span and the server
// span it caused can be compared.
func tracedServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(middleware.HTTP(h))
	t.Cleanup(srv.Close)
	return srv
}

func tracedClient(opts ...middleware.Option) *http.Client {
	return &http.Client{Transport: middleware.Transport(&http.Transport{}, opts...)}
}

func clientSpans(env *testEnv) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range env.tp.Store().Spans() {
		if s.SpanKind() == trace.SpanKindClient {
			out = append(out, s)
		}
	}
	return out
}

func TestTransportSpanAndPropagation(t *testing.T) {
	env := setup(t)
	var gotTP string
	srv := tracedServer(t, func(w http.ResponseWriter, r *http.Request) {
		gotTP = r.Header.Get("traceparent")
		_, _ = io.WriteString(w, "hello")
	})
	c := tracedClient(middleware.WithCapturedHeaders([]string{"X-Request-Id"}, []string{"Content-Type"}))
	defer c.CloseIdleConnections()

	ctx, parent := env.tp.Tracer().Start(context.Background(), "caller")
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/things/1?q=go", nil)
	req.Header.Set("X-Request-Id", "r-9")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	parent.End()
	if string(body) != "hello" {
		t.Fatalf("body %q", body)
	}
	if req.Header.Get("traceparent") != "" {
		t.Error("the caller's request was modified")
	}
	cs := env.span(t, trace.SpanKindClient)
	ss := env.span(t, trace.SpanKindServer)
	if cs.Name() != "GET" {
		t.Errorf("client span name %q", cs.Name())
	}
	if cs.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Error("client span is not the caller's child")
	}
	if ss.Parent().SpanID() != cs.SpanContext().SpanID() || ss.SpanContext().TraceID() != cs.SpanContext().TraceID() {
		t.Errorf("server did not continue the client span (traceparent %q)", gotTP)
	}
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	p, _ := strconv.Atoi(port)
	wantAttr(t, cs, "http.request.method", "GET")
	wantAttr(t, cs, "server.address", host)
	wantAttr(t, cs, "server.port", p)
	wantAttr(t, cs, "url.full", srv.URL+"/things/1?q=go")
	wantAttr(t, cs, "http.response.status_code", 200)
	wantAttr(t, cs, "network.protocol.version", "1.1")
	wantAttr(t, cs, "http.request.header.x-request-id", []string{"r-9"})
	wantAttr(t, cs, "http.response.header.content-type", []string{"text/plain; charset=utf-8"})
	if cs.Status().Code != codes.Unset {
		t.Errorf("status %v", cs.Status())
	}
	if got := env.metric(t, "http_client_request_duration_seconds"); !strings.Contains(got, "server_address="+host) {
		t.Errorf("client metric: %s", got)
	}
}

func TestTransportErrorStatuses(t *testing.T) {
	env := setup(t)
	srv := tracedServer(t, func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(code)
	})
	c := tracedClient()
	defer c.CloseIdleConnections()
	for _, code := range []int{204, 302, 404, 503} {
		resp, err := c.Get(srv.URL + "/" + strconv.Itoa(code))
		if err != nil && code != 302 {
			t.Fatal(err)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
	waitFor(t, func() bool { return len(clientSpans(env)) >= 4 })
	for _, s := range clientSpans(env) {
		code := int(attrs(s)["http.response.status_code"].AsInt64())
		if (code >= 400) != (s.Status().Code == codes.Error) {
			t.Errorf("%d: status %v", code, s.Status())
		}
		if code >= 400 {
			wantAttr(t, s, "error.type", strconv.Itoa(code))
		}
	}
}

func TestTransportConnectionRefused(t *testing.T) {
	env := setup(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	c := tracedClient()
	_, err := c.Get("http://" + addr + "/")
	if err == nil {
		t.Fatal("request to a closed port succeeded")
	}
	s := env.span(t, trace.SpanKindClient)
	if s.Status().Code != codes.Error {
		t.Errorf("status %v", s.Status())
	}
	wantAttr(t, s, "error.type", "*net.OpError")
	noAttr(t, s, "http.response.status_code")
	if got := env.metric(t, "http_client_request_duration_seconds"); !strings.Contains(got, "count=1") {
		t.Errorf("failed request not recorded: %s", got)
	}
}

func TestTransportClientTimeoutEndsSpan(t *testing.T) {
	env := setup(t)
	release := make(chan struct{})
	srv := tracedServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow-body" {
			w.WriteHeader(200)
			_, _ = io.WriteString(w, "start")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c := tracedClient()
	c.Timeout = 150 * time.Millisecond
	defer c.CloseIdleConnections()

	// Timeout before the headers.
	if _, err := c.Get(srv.URL + "/slow-headers"); err == nil {
		t.Fatal("no timeout")
	}
	// Timeout while the body is read.
	resp, err := c.Get(srv.URL + "/slow-body")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatal("body read did not time out")
	}
	waitFor(t, func() bool { return len(clientSpans(env)) == 2 })
	for _, s := range clientSpans(env) {
		if s.Status().Code != codes.Error {
			t.Errorf("%v: status %v", attrs(s)["url.full"].AsString(), s.Status())
		}
		if et := attrs(s)["error.type"].AsString(); et != "timeout" && et != "canceled" {
			t.Errorf("%v: error.type %q", attrs(s)["url.full"].AsString(), et)
		}
	}
}

func TestTransportSpanEndsOnBodyDone(t *testing.T) {
	env := setup(t)
	srv := tracedServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", 64<<10))
	})
	c := tracedClient()
	defer c.CloseIdleConnections()

	// Read to EOF, never closed.
	resp, err := c.Get(srv.URL + "/eof")
	if err != nil {
		t.Fatal(err)
	}
	if len(clientSpans(env)) != 0 {
		t.Fatal("span ended before the body was read")
	}
	_, _ = io.ReadAll(resp.Body)
	waitFor(t, func() bool { return len(clientSpans(env)) == 1 })
	resp.Body.Close()

	// Closed without reading.
	resp, err = c.Get(srv.URL + "/close")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitFor(t, func() bool { return len(clientSpans(env)) == 2 })

	// Abandoned: neither read nor closed, the context is canceled: the
	// span ends, in error (the response was never consumed).
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/abandoned", nil)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	waitFor(t, func() bool { return len(clientSpans(env)) == 3 })
	resp.Body.Close()

	// HEAD has no body: ends at once.
	resp, err = c.Head(srv.URL + "/head")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(clientSpans(env)) == 4 })
	resp.Body.Close()
	for _, s := range clientSpans(env) {
		abandoned := strings.HasSuffix(attrs(s)["url.full"].AsString(), "/abandoned")
		if abandoned != (s.Status().Code == codes.Error) {
			t.Errorf("%s: %v", attrs(s)["url.full"].AsString(), s.Status())
		}
		if abandoned {
			wantAttr(t, s, "error.type", "canceled")
		}
	}
}

func TestTransportRedactsUserInfo(t *testing.T) {
	env := setup(t)
	srv := tracedServer(t, func(w http.ResponseWriter, r *http.Request) {})
	c := tracedClient()
	defer c.CloseIdleConnections()
	u := strings.Replace(srv.URL, "http://", "http://alice:s3cret@", 1)
	resp, err := c.Get(u + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := env.span(t, trace.SpanKindClient)
	if full := attrs(s)["url.full"].AsString(); strings.Contains(full, "s3cret") || strings.Contains(full, "alice") {
		t.Errorf("url.full leaks credentials: %q", full)
	}
}

func TestTransportUnsampledStillPropagates(t *testing.T) {
	env := setup(t, "parentbased_always_off")
	var gotTP string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { gotTP = r.Header.Get("traceparent") }))
	defer srv.Close()
	c := tracedClient()
	defer c.CloseIdleConnections()
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasSuffix(gotTP, "-00") || len(gotTP) != 55 {
		t.Errorf("unsampled traceparent %q", gotTP)
	}
	if len(env.tp.Store().Spans()) != 0 {
		t.Error("unsampled span stored")
	}
}

func TestTransportDisabledPassesThrough(t *testing.T) {
	var gotTP string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { gotTP = r.Header.Get("traceparent") }))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	c := &http.Client{Transport: middleware.Transport(base)}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if gotTP != "" {
		t.Errorf("disabled transport injected %q", gotTP)
	}
	if u, ok := middleware.Transport(base).(interface{ Unwrap() http.RoundTripper }); !ok || u.Unwrap() != base {
		t.Error("Unwrap does not return the base transport")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	if !testbackend.Eventually(5*time.Second, cond) {
		t.Fatal("condition not met within 5s")
	}
}
