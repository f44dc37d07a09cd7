package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/observekit/observe"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// After a million requests (each a trace of two spans and three log lines),
// the status state (trace store, log ring, RED history) has stayed within
// its bound: the whole heap, everything observe holds included, has grown
// by less than 32 MiB since before Init, and both stores are full and
// counting evictions. Under the race detector or -short, 100k requests
// (still 40 times the trace store's capacity); .ci/run runs the million
// without it.
func TestStatusMemoryBoundAfterAMillionRequests(t *testing.T) {
	total := 1_000_000
	if raceEnabled || testing.Short() {
		total = 100_000
	}
	reliabEnv(t)
	pre := heapInUse()
	obs, err := observe.Init(context.Background(), observe.WithServiceName("status-memory"), observe.WithLogWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Shutdown(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		ctx, span := otel.Tracer("memory").Start(r.Context(), "load item", trace.WithAttributes(attribute.String("item.id", r.PathValue("id"))))
		slog.InfoContext(ctx, "loading item", "id", r.PathValue("id"), "shard", 7)
		span.End()
		slog.InfoContext(r.Context(), "item loaded", "bytes", 2)
		_, _ = io.WriteString(w, "ok")
	})
	h := middleware.HTTP(mux)
	serve := func(n int) {
		var wg sync.WaitGroup
		workers := max(2, runtime.GOMAXPROCS(0))
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := newDriver(h)
				for i := range n / workers {
					d.req.URL.Path = fmt.Sprintf("/items/%d", (i*workers+w)%50)
					d.w.reset()
					d.h.ServeHTTP(d.w, d.req)
				}
			}()
		}
		wg.Wait()
	}
	serve(100)
	base := heapInUse()
	serve(total)
	after := heapInUse()
	growth := int64(after) - int64(pre)
	t.Logf("%d requests: heap before Init %.1f MiB, after Init and 100 requests %.1f MiB, after %.1f MiB (growth %.1f MiB)",
		total, mib(pre), mib(base), mib(after), float64(growth)/(1<<20))
	if growth > 32<<20 {
		t.Errorf("the heap grew by %.1f MiB since before Init, over the 32 MiB bound of the status state", float64(growth)/(1<<20))
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/debug/status", nil)
	req.RemoteAddr, req.Host = "127.0.0.1:1", "127.0.0.1:9464"
	obs.AdminHandler().ServeHTTP(rec, req)
	var doc struct {
		Self struct {
			TraceStore struct {
				Spans, Capacity int
				Evicted         uint64
			} `json:"trace_store"`
			LogRing struct {
				Lines   int    `json:"lines"`
				Evicted uint64 `json:"evicted"`
			} `json:"log_ring"`
		} `json:"self"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	ts, lr := doc.Self.TraceStore, doc.Self.LogRing
	t.Logf("trace store %+v; log ring %+v", ts, lr)
	if ts.Spans != ts.Capacity || ts.Evicted < uint64(total) || lr.Evicted < uint64(total) {
		t.Errorf("the stores are not full and evicting: %s", rec.Body)
	}
}

// The redaction corpus (the detectors' fixtures of redact's tests, and
// sensitive keys) put everywhere a request can put it: log messages and
// attributes, span attributes, events, status and names, URL query values.
// None of it appears on the page or in any API answer.
func TestStatusNeverShowsASecret(t *testing.T) {
	secrets := map[string]string{
		"card":     "4111111111111111",
		"jwt":      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
		"bearer":   "abcdef1234567890XYZ",
		"aws id":   "AKIAIOSFODNN7EXAMPLE",
		"aws sec":  "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		"gcp":      "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
		"email":    "jane.doe@privatemail.org",
		"ssn":      "123-45-6789",
		"password": "hunter2-Zq9",
		"pem":      "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu",
	}
	pem := "-----BEGIN RSA PRIVATE KEY-----\n" + secrets["pem"] + "\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n-----END RSA PRIVATE KEY-----"
	s := newStatusService(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pay", func(w http.ResponseWriter, r *http.Request) {
		ctx, span := otel.Tracer("pay").Start(r.Context(), "charge "+secrets["email"],
			trace.WithAttributes(attribute.String("password", secrets["password"]),
				attribute.String("note", "card "+secrets["card"]+" by "+secrets["email"]),
				attribute.String("auth", "Bearer "+secrets["bearer"]),
				attribute.StringSlice("keys", []string{secrets["aws id"], secrets["gcp"]})))
		span.AddEvent("retry with "+secrets["ssn"], trace.WithAttributes(attribute.String("aws_secret_access_key", secrets["aws sec"]), attribute.String("token", secrets["jwt"])))
		span.SetStatus(codes.Error, "declined card "+secrets["card"])
		slog.ErrorContext(ctx, "charge failed for "+secrets["email"]+" card "+secrets["card"],
			"password", secrets["password"], "jwt", secrets["jwt"], "key", pem, "ssn", secrets["ssn"],
			slog.Group("user", "api_key", secrets["gcp"], "mail", secrets["email"]))
		span.End()
		http.Error(w, "declined", http.StatusPaymentRequired)
	})
	app := middleware.HTTP(mux)
	req := httptest.NewRequest("GET", "/pay?token="+secrets["jwt"]+"&card="+secrets["card"], nil)
	req.Header.Set("Authorization", "Bearer "+secrets["bearer"])
	app.ServeHTTP(httptest.NewRecorder(), req)

	var list traceList
	rec := s.call("GET", "/debug/traces", "", "")
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Traces) != 1 {
		t.Fatalf("traces: %v %s", err, rec.Body)
	}
	id := list.Traces[0].TraceID
	var seen strings.Builder
	for _, p := range []string{"/", "/debug/status", "/debug/red", "/debug/traces", "/debug/traces?error=true", "/debug/traces/" + id, "/debug/logs?trace_id=" + id} {
		rec := s.call("GET", p, "", "")
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d", p, rec.Code)
		}
		fmt.Fprintf(&seen, "== %s\n%s\n", p, rec.Body)
	}
	out := seen.String()
	if !strings.Contains(out, "[REDACTED") || !strings.Contains(out, "charge failed") {
		t.Fatalf("the trace and its lines are not there:\n%s", out)
	}
	for name, v := range secrets {
		// JSON escapes "/" nowhere and "+" nowhere; check the raw form and
		// its distinctive tail.
		for _, form := range []string{v, v[len(v)-8:]} {
			if i := strings.Index(out, form); i >= 0 {
				t.Errorf("secret %s (%q) appears: …%s…", name, form, out[max(0, i-150):min(len(out), i+len(form)+50)])
			}
		}
	}
}
