package integration

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/testbackend"
	"github.com/observekit/observe/middleware"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Panics in user code that observe calls (LogValuers, values' methods,
// options, hooks, exporters) never crash the service.

type panicValuer struct{}

func (panicValuer) LogValue() slog.Value { panic("valuer boom") }

// nestedPanicValuer resolves to a group holding a panicking valuer.
type nestedPanicValuer struct{}

func (nestedPanicValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.Any("inner", panicValuer{}), slog.String("ok", "yes"))
}

type panicJSON struct{}

func (panicJSON) MarshalJSON() ([]byte, error) { panic("json boom") }

type panicText struct{}

func (panicText) MarshalText() ([]byte, error) { panic("text boom") }

type panicError struct{}

func (panicError) Error() string { panic("error boom") }

type panicStringer struct{}

func (panicStringer) String() string { panic("stringer boom") }

// valueErr has a value receiver: a nil *valueErr panics in Error.
type valueErr struct{ msg string }

func (e valueErr) Error() string { return e.msg }

type structWithPanics struct {
	Name   string
	Valuer panicValuer
	Err    error
	Str    panicStringer
	Secret string `redact:"true"`
}

func panicLogCases() map[string]func(l *slog.Logger) {
	var nilErr *valueErr
	return map[string]func(l *slog.Logger){
		"valuer":           func(l *slog.Logger) { l.Info("m", "v", panicValuer{}) },
		"valuer-pointer":   func(l *slog.Logger) { l.Info("m", "v", &panicValuer{}) },
		"nested-valuer":    func(l *slog.Logger) { l.Info("m", "v", nestedPanicValuer{}) },
		"valuer-in-group":  func(l *slog.Logger) { l.Info("m", slog.Group("g", "v", panicValuer{})) },
		"valuer-in-with":   func(l *slog.Logger) { l.With("v", panicValuer{}).Info("m") },
		"valuer-in-group2": func(l *slog.Logger) { l.WithGroup("g").With("v", panicValuer{}).Info("m", "w", panicValuer{}) },
		"marshal-json":     func(l *slog.Logger) { l.Info("m", "v", panicJSON{}) },
		"marshal-text":     func(l *slog.Logger) { l.Info("m", "v", panicText{}) },
		"error-method":     func(l *slog.Logger) { l.Info("m", "err", panicError{}) },
		"error-nil-ptr":    func(l *slog.Logger) { l.Info("m", "err", error(nilErr)) },
		"stringer":         func(l *slog.Logger) { l.Info("m", "v", panicStringer{}) },
		"struct-fields":    func(l *slog.Logger) { l.Info("m", "v", structWithPanics{Name: "n", Err: panicError{}}) },
		"map-values":       func(l *slog.Logger) { l.Info("m", "v", map[string]any{"a": panicValuer{}, "b": panicStringer{}}) },
		"slice-values":     func(l *slog.Logger) { l.Info("m", "v", []any{panicError{}, panicJSON{}}) },
		"joined-errors":    func(l *slog.Logger) { l.Error("m", "err", errors.Join(errors.New("ok"), panicError{})) },
		"wrapped-error":    func(l *slog.Logger) { l.Error("m", "err", wrapErr{panicError{}}) },
	}
}

type wrapErr struct{ inner error }

func (w wrapErr) Error() string { return "wrapped: " + w.inner.Error() }
func (w wrapErr) Unwrap() error { return w.inner }

// captureLogs is an sdklog.Exporter keeping what it is given.
type captureLogs struct {
	mu      sync.Mutex
	records int
}

func (c *captureLogs) Export(_ context.Context, rs []sdklog.Record) error {
	c.mu.Lock()
	c.records += len(rs)
	c.mu.Unlock()
	return nil
}
func (c *captureLogs) Shutdown(context.Context) error   { return nil }
func (c *captureLogs) ForceFlush(context.Context) error { return nil }

func TestPanicInLogValuesNeverEscapes(t *testing.T) {
	for _, mode := range []string{"json", "text", "json+otlp"} {
		t.Run(mode, func(t *testing.T) {
			reliabEnv(t)
			if mode == "text" {
				t.Setenv("OBSERVE_LOG_FORMAT", "text")
			}
			logs := &logsBuffer{}
			opts := []observe.Option{observe.WithLogWriter(logs), observe.WithAccessLog(false)}
			capture := &captureLogs{}
			if mode == "json+otlp" {
				opts = append(opts, observe.WithLogExporter(capture))
			}
			obs, err := observe.Init(context.Background(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			cases := panicLogCases()
			for name, logf := range cases {
				before := strings.Count(logs.String(), "\n")
				func() {
					defer func() {
						if p := recover(); p != nil {
							t.Errorf("%s: the panic escaped into the caller: %v", name, p)
						}
					}()
					logf(slog.Default())
				}()
				if after := strings.Count(logs.String(), "\n"); after != before+1 {
					t.Errorf("%s: %d lines written, want 1:\n%s", name, after-before, logs.String())
				}
			}
			// Through the middleware, in a request.
			mux := http.NewServeMux()
			mux.HandleFunc("GET /v", func(w http.ResponseWriter, r *http.Request) {
				slog.InfoContext(r.Context(), "in request", "v", panicValuer{}, "e", panicError{})
			})
			rec := httptest.NewRecorder()
			middleware.HTTP(mux).ServeHTTP(rec, httptest.NewRequest("GET", "/v", nil))
			if rec.Code != 200 {
				t.Errorf("request logging a panicking value: status %d", rec.Code)
			}
			if mode != "text" {
				for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
					if !json.Valid([]byte(l)) {
						t.Errorf("not a JSON line: %s", l)
					}
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := obs.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if mode == "json+otlp" {
				capture.mu.Lock()
				n := capture.records
				capture.mu.Unlock()
				if n < len(cases)+1 {
					t.Errorf("%d records exported, want %d (one per line)", n, len(cases)+1)
				}
			}
		})
	}
}

// A log writer that panics (a user's io.Writer) does not crash the caller.
type panicWriter struct{ n atomic.Int32 }

func (w *panicWriter) Write(p []byte) (int, error) {
	w.n.Add(1)
	panic("writer boom")
}

func TestPanicInLogWriterNeverEscapes(t *testing.T) {
	reliabEnv(t)
	w := &panicWriter{}
	var obs *observe.Observer
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("Init with a panicking log writer panicked: %v", p)
			}
		}()
		var err error
		obs, err = observe.Init(context.Background(), observe.WithLogWriter(w))
		if err != nil {
			t.Fatal(err)
		}
	}()
	defer obs.Shutdown(context.Background())
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("a log call with a panicking writer panicked: %v", p)
			}
		}()
		slog.Info("hello")
		slog.Error("world")
	}()
	if w.n.Load() == 0 {
		t.Error("the writer was never called")
	}
}

// Hooks: readiness checks that panic or hang, middleware filters that panic.
func TestPanicInHooksNeverCrashes(t *testing.T) {
	t.Run("readiness", func(t *testing.T) {
		reliabEnv(t)
		obs, _ := initObs(t)
		h := obs.AdminHandler()
		release := make(chan struct{})
		defer close(release)
		obs.AddReadinessCheck("panics", func(context.Context) error { panic("check boom") })
		obs.AddReadinessCheck("hangs", func(context.Context) error { <-release; return nil }) // ignores its context
		obs.AddReadinessCheck("fine", func(context.Context) error { return nil })
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			done <- rec
		}()
		select {
		case rec := <-done:
			var body struct {
				Failed map[string]string `json:"failed"`
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			if rec.Code != 503 || body.Failed["panics"] == "" || body.Failed["hangs"] == "" || body.Failed["fine"] != "" {
				t.Errorf("/readyz = %d %s; want 503 naming the panicking and the hung check", rec.Code, rec.Body.String())
			}
		case <-time.After(5 * time.Second):
			t.Fatal("/readyz hangs on a check that ignores its context")
		}
	})

	t.Run("http-filter", func(t *testing.T) {
		reliabEnv(t)
		_, logs := initObs(t)
		mux := http.NewServeMux()
		mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
		h := middleware.HTTP(mux, middleware.WithFilter(func(*http.Request) bool { panic("filter boom") }))
		rec := httptest.NewRecorder()
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("a panicking filter escaped the middleware: %v", p)
				}
			}()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
		}()
		if rec.Code != 200 || rec.Body.String() != "ok" {
			t.Errorf("request with a panicking filter: %d %q, want the handler's 200", rec.Code, rec.Body.String())
		}
		if !strings.Contains(logs.String(), "filter boom") {
			t.Errorf("the filter's panic is not logged:\n%s", logs.String())
		}
	})

	t.Run("grpc-filter", func(t *testing.T) {
		reliabEnv(t)
		_, logs := initObs(t)
		boom := middleware.WithMethodFilter(func(string) bool { panic("method filter boom") })
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer(middleware.GRPCServer(boom)...)
		healthpb.RegisterHealthServer(srv, health.NewServer())
		go func() { _ = srv.Serve(ln) }()
		defer srv.Stop()
		conn, err := grpc.NewClient(ln.Addr().String(), append(middleware.GRPCClient(boom), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("a panicking method filter escaped the client middleware: %v", p)
				}
			}()
			resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("call with panicking method filters: %v %v", resp, err)
			}
		}()
		if !strings.Contains(logs.String(), "method filter boom") {
			t.Errorf("the filter's panic is not logged:\n%s", logs.String())
		}
	})
}

// panicSpanExporter panics in every method.
type panicSpanExporter struct{ calls atomic.Int32 }

func (e *panicSpanExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	e.calls.Add(1)
	panic("span exporter boom")
}
func (e *panicSpanExporter) Shutdown(context.Context) error { panic("span exporter shutdown boom") }

type panicLogExporter struct{ calls atomic.Int32 }

func (e *panicLogExporter) Export(context.Context, []sdklog.Record) error {
	e.calls.Add(1)
	panic("log exporter boom")
}
func (e *panicLogExporter) Shutdown(context.Context) error   { panic("log exporter shutdown boom") }
func (e *panicLogExporter) ForceFlush(context.Context) error { panic("log exporter flush boom") }

// A user's exporter runs in observe's goroutines: its panics are export
// failures, counted and reported, never the end of the process.
func TestPanicInExportersNeverCrashes(t *testing.T) {
	reliabEnv(t)
	se, le := &panicSpanExporter{}, &panicLogExporter{}
	sink := &warnSink{}
	obs, err := observe.Init(context.Background(), observe.WithLogWriter(sink),
		observe.WithSpanExporter(se), observe.WithLogExporter(le))
	if err != nil {
		t.Fatal(err)
	}
	d := newDriver(workHandler())
	deadline := time.Now().Add(10 * time.Second)
	d.serveUntilExported(t, &se.calls, &le.calls, 50*time.Millisecond)
	var body string
	for {
		body = scrapeHandler(t, obs)
		tr, _ := metricValue(body, "observe_export_failures_total", `signal="traces"`)
		lg, _ := metricValue(body, "observe_export_failures_total", `signal="logs"`)
		if tr > 0 && lg > 0 && sink.count("panicked") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("panics not counted or not reported:\n%s\n%s", testbackend.Grep(body, "observe_export_failures"), sink.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	took, err := shutdownWithin(obs, 2*time.Second)
	if took > 2*time.Second+shutdownSlack {
		t.Errorf("Shutdown took %s", took)
	}
	if err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Logf("Shutdown: %v", err)
	}
}

// The middleware's own recovery, per contract, for panic values beyond a
// string: an error, nil, a value whose methods panic too.
func TestPanicValuesInHandlersPerContract(t *testing.T) {
	reliabEnv(t)
	obs, logs := initObs(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /err", func(http.ResponseWriter, *http.Request) { panic(errors.New("handler err boom")) })
	mux.HandleFunc("GET /nil", func(http.ResponseWriter, *http.Request) { panic(nil) })
	mux.HandleFunc("GET /evil", func(http.ResponseWriter, *http.Request) { panic(panicError{}) })
	mux.HandleFunc("GET /stringer", func(http.ResponseWriter, *http.Request) { panic(panicStringer{}) })
	mux.HandleFunc("GET /valuer", func(http.ResponseWriter, *http.Request) { panic(panicValuer{}) })
	h := middleware.HTTP(mux)
	for _, p := range []string{"/err", "/nil", "/evil", "/stringer", "/valuer"} {
		rec := httptest.NewRecorder()
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: panic escaped the middleware: %v", p, r)
				}
			}()
			h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		}()
		if rec.Code != 500 {
			t.Errorf("%s: status %d, want 500", p, rec.Code)
		}
	}
	body := scrapeHandler(t, obs)
	for _, route := range []string{"/err", "/nil", "/evil", "/stringer", "/valuer"} {
		if v, _ := metricValue(body, "http_server_request_duration_seconds_count", `http_route="`+route+`"`, `http_response_status_code="500"`); v != 1 {
			t.Errorf("%s: not recorded as one 500:\n%s", route, testbackend.Grep(body, route))
		}
	}
	if n := strings.Count(logs.String(), `"msg":"panic in HTTP handler"`); n != 5 {
		t.Errorf("%d ERROR lines for 5 panics:\n%s", n, logs.String())
	}
}

// hangSpanExporter and hangLogExporter ignore their contexts: every method
// waits for release.
type hangSpanExporter struct {
	release chan struct{}
	calls   atomic.Int32
}

func (e *hangSpanExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	e.calls.Add(1)
	<-e.release
	return nil
}
func (e *hangSpanExporter) Shutdown(context.Context) error { <-e.release; return nil }

type hangLogExporter struct {
	release chan struct{}
	calls   atomic.Int32
}

func (e *hangLogExporter) Export(context.Context, []sdklog.Record) error {
	e.calls.Add(1)
	<-e.release
	return nil
}
func (e *hangLogExporter) Shutdown(context.Context) error   { <-e.release; return nil }
func (e *hangLogExporter) ForceFlush(context.Context) error { <-e.release; return nil }

// A program's exporter that ignores its context (in Export, Shutdown and
// ForceFlush) does not hold Shutdown past its deadline; observe's goroutines
// end once the exporter returns.
func TestShutdownByDeadlineWithExportersIgnoringTheirContext(t *testing.T) {
	reliabEnv(t)
	leaks := goleak.IgnoreCurrent()
	release := make(chan struct{})
	se, le := &hangSpanExporter{release: release}, &hangLogExporter{release: release}
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	obs, err := observe.Init(context.Background(), observe.WithLogWriter(&warnSink{}),
		observe.WithSpanExporter(se), observe.WithLogExporter(le))
	if err != nil {
		t.Fatal(err)
	}
	d := newDriver(workHandler())
	d.serveUntilExported(t, &se.calls, &le.calls, 20*time.Millisecond)
	const budget = 300 * time.Millisecond
	took, err := shutdownWithin(obs, budget)
	if took > budget+shutdownSlack {
		t.Errorf("Shutdown took %s with a %s deadline", took, budget)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the deadline's error", err)
	}
	// Released, the exporters return and every goroutine of observe's ends.
	close(release)
	released = true
	if took, err := shutdownWithin(obs, time.Second); err == nil || took > time.Second {
		t.Errorf("a second Shutdown: %v after %s, want the first's result at once", err, took)
	}
	goleak.VerifyNone(t, leaks, goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}
