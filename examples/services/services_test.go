package main

import (
	"io"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/observekit/observe/internal/testbackend"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	os.Exit(m.Run())
}

// One request to the gateway is one trace across the three processes, in a
// real Jaeger: the gateway's, the orders service's and the inventory's
// spans, each under its own service name, each span's parent in the trace.
func TestOneTraceCrossesAllThree(t *testing.T) {
	j := testbackend.StartJaeger(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", j.OTLPHTTP)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	st, err := start("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.stop()

	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest(http.MethodGet, st.GatewayURL()+"/orders/42", nil)
	req.Header.Set("Traceparent", "00-"+traceID+"-"+parent+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Trace-Id") != traceID {
		t.Fatalf("gateway: %d, Trace-Id %q: %s", resp.StatusCode, resp.Header.Get("Trace-Id"), body)
	}

	// gateway: server + HTTP client; orders: server + gRPC client;
	// inventory: gRPC server.
	tr := j.WaitTrace(t, traceID, 5, 20*time.Second)
	want := map[string][]string{
		"gateway":   {"GET /orders/{id}", "GET"},
		"orders":    {"GET /orders/{id}", "grpc.testing.TestService/UnaryCall"},
		"inventory": {"grpc.testing.TestService/UnaryCall"},
	}
	got := map[string][]string{}
	for i := range tr.Spans {
		s := &tr.Spans[i]
		got[tr.Service(s)] = append(got[tr.Service(s)], s.OperationName)
		if p := s.Parent(); p != parent && tr.Span(p) == nil {
			t.Errorf("%s span %q: parent %s not in the trace", tr.Service(s), s.OperationName, p)
		}
	}
	for svc, names := range want {
		for _, n := range names {
			if !slices.Contains(got[svc], n) {
				t.Errorf("%s: no span %q (spans by service: %v)", svc, n, got)
			}
		}
	}
}
