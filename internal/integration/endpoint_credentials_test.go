package integration

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/observekit/observe"
)

// End to end: a collector behind basic auth receives spans, metrics and
// logs from a service configured with nothing but the endpoint URL.
func TestEndpointCredentialsReachTheCollector(t *testing.T) {
	reliabEnv(t)
	var mu sync.Mutex
	seen := map[string]string{} // path -> Authorization
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
		if u, p, ok := r.BasicAuth(); !ok || u != "otlp" || p != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer col.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", strings.Replace(col.URL, "http://", "http://otlp:s3cret@", 1))
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_METRICS_EXPORTER", "otlp")
	t.Setenv("OTEL_LOGS_EXPORTER", "otlp")
	var logs logsBuffer
	obs, err := observe.Init(context.Background(), observe.WithServiceName("basic-auth"), observe.WithLogWriter(&logs))
	if err != nil {
		t.Fatal(err)
	}
	_, span := obs.Tracer("t").Start(context.Background(), "op")
	span.End()
	obs.Logger().Info("hello")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := obs.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (the collector said 401?)", err)
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("otlp:s3cret"))
	mu.Lock()
	defer mu.Unlock()
	for _, p := range []string{"/v1/traces", "/v1/metrics", "/v1/logs"} {
		if seen[p] != want {
			t.Errorf("%s: Authorization %q, want %q (seen %v)", p, seen[p], want, seen)
		}
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Errorf("the password reached a log line:\n%s", logs.String())
	}
}
