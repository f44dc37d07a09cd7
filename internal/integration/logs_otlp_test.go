package integration

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/logging"
	"go.opentelemetry.io/otel"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// The OTLP path against a real receiver: an OTLP/HTTP and an OTLP/gRPC
// endpoint on loopback that decode every export with the official
// go.opentelemetry.io/proto/otlp types (Jaeger takes no logs).

// otlpLogsReceiver keeps every decoded ExportLogsServiceRequest.
type otlpLogsReceiver struct {
	collogspb.UnimplementedLogsServiceServer
	mu       sync.Mutex
	requests []*collogspb.ExportLogsServiceRequest
	headers  []http.Header
	url      string // http: the logs URL; grpc: http://host:port
}

func (rcv *otlpLogsReceiver) add(req *collogspb.ExportLogsServiceRequest, h http.Header) {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	rcv.requests = append(rcv.requests, req)
	rcv.headers = append(rcv.headers, h)
}

// Export implements the gRPC LogsService.
func (rcv *otlpLogsReceiver) Export(ctx context.Context, req *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	h := http.Header{}
	for k, v := range md {
		h[http.CanonicalHeaderKey(k)] = v
	}
	rcv.add(req, h)
	return &collogspb.ExportLogsServiceResponse{}, nil
}

// otlpRecord is one received log record with its resource and scope.
type otlpRecord struct {
	resource map[string]string
	scope    string
	rec      *logspb.LogRecord
}

func (rcv *otlpLogsReceiver) records() []otlpRecord {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	var out []otlpRecord
	for _, req := range rcv.requests {
		for _, rl := range req.GetResourceLogs() {
			res := map[string]string{}
			for _, kv := range rl.GetResource().GetAttributes() {
				res[kv.GetKey()] = anyString(kv.GetValue())
			}
			for _, sl := range rl.GetScopeLogs() {
				for _, r := range sl.GetLogRecords() {
					out = append(out, otlpRecord{resource: res, scope: sl.GetScope().GetName(), rec: r})
				}
			}
		}
	}
	return out
}

// anyString renders an AnyValue as text; maps as {k=v,...}.
func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_KvlistValue:
		var parts []string
		for _, kv := range x.KvlistValue.GetValues() {
			parts = append(parts, kv.GetKey()+"="+anyString(kv.GetValue()))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return fmt.Sprint(v)
}

func attrMap(r *logspb.LogRecord) map[string]string {
	out := map[string]string{}
	for _, kv := range r.GetAttributes() {
		out[kv.GetKey()] = anyString(kv.GetValue())
	}
	return out
}

func startOTLPHTTPReceiver(t *testing.T) *otlpLogsReceiver {
	t.Helper()
	rcv := &otlpLogsReceiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/logs", func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			http.Error(w, "content type "+ct, 415)
			return
		}
		req := &collogspb.ExportLogsServiceRequest{}
		if err := proto.Unmarshal(raw, req); err != nil {
			t.Errorf("receiver: undecodable export: %v", err)
			http.Error(w, err.Error(), 400)
			return
		}
		rcv.add(req, r.Header.Clone())
		resp, _ := proto.Marshal(&collogspb.ExportLogsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(resp)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	rcv.url = "http://" + ln.Addr().String() + "/v1/logs"
	return rcv
}

func startOTLPGRPCReceiver(t *testing.T) *otlpLogsReceiver {
	t.Helper()
	rcv := &otlpLogsReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	collogspb.RegisterLogsServiceServer(srv, rcv)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	rcv.url = "http://" + ln.Addr().String()
	return rcv
}

// logsEmitTestRecords writes the records both paths must agree on.
func logsEmitTestRecords(t *testing.T) (traceID, spanID string) {
	ctx, span := otel.Tracer("logs-test").Start(context.Background(), "op")
	defer span.End()
	sc := span.SpanContext()

	slog.DebugContext(ctx, "hidden debug", "x", 1)
	slog.InfoContext(ctx, "user signed in", "password", "hunter2", "note", "card 4111 1111 1111 1111 used", "email", "jane@example.com", "n", 7)
	logging.Named("db").With("table", "orders").WarnContext(ctx, "slow query", slog.Group("q", "ms", 120, "api_key", "k-123"))
	slog.ErrorContext(ctx, "payment failed", "err", errors.New("upstream said Bearer abcdefghijklmnopqrstuvwxyz0123"), "bad", "caf\xe9")
	return sc.TraceID().String(), sc.SpanID().String()
}

func TestLogsOTLPHTTPSameRecordsRedactionLevels(t *testing.T) {
	rcv := startOTLPHTTPReceiver(t)
	obs, lb := logsInit(t, map[string]string{
		"OTEL_LOGS_EXPORTER":               "otlp",
		"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": rcv.url,
		"OTEL_EXPORTER_OTLP_LOGS_HEADERS":  "x-tenant=t1",
	}, observe.WithAccessLog(false))
	traceID, spanID := logsEmitTestRecords(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := obs.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	logsCompare(t, rcv, lb, traceID, spanID)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.headers) == 0 || rcv.headers[0].Get("X-Tenant") != "t1" {
		t.Errorf("OTEL_EXPORTER_OTLP_LOGS_HEADERS not sent: %v", rcv.headers)
	}
}

func TestLogsOTLPGRPC(t *testing.T) {
	rcv := startOTLPGRPCReceiver(t)
	obs, lb := logsInit(t, map[string]string{
		"OTEL_LOGS_EXPORTER":          "otlp",
		"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.url,
		"OTEL_TRACES_EXPORTER":        "none",
	}, observe.WithAccessLog(false))
	traceID, spanID := logsEmitTestRecords(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := obs.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	logsCompare(t, rcv, lb, traceID, spanID)
}

func logsCompare(t *testing.T, rcv *otlpLogsReceiver, lb *logsBuffer, traceID, spanID string) {
	t.Helper()
	lines := map[string]map[string]any{}
	for _, l := range lb.lines(t) {
		lines[l["msg"].(string)] = l
	}
	got := map[string]otlpRecord{}
	for _, r := range rcv.records() {
		got[anyString(r.rec.GetBody())] = r
	}
	if len(got) != len(lines) {
		t.Errorf("%d records exported, %d lines written", len(got), len(lines))
	}
	for _, msg := range []string{"user signed in", "slow query", "payment failed"} {
		line, ok1 := lines[msg]
		r, ok2 := got[msg]
		if !ok1 || !ok2 {
			t.Fatalf("%q: line %v, exported %v", msg, ok1, ok2)
		}
		rec := r.rec
		if rec.GetSeverityText() != line["level"] {
			t.Errorf("%q: severity %q vs level %q", msg, rec.GetSeverityText(), line["level"])
		}
		if hex.EncodeToString(rec.GetTraceId()) != traceID || hex.EncodeToString(rec.GetSpanId()) != spanID || line["trace_id"] != traceID || line["span_id"] != spanID {
			t.Errorf("%q: not correlated to %s/%s: record %x/%x, line %v/%v", msg, traceID, spanID, rec.GetTraceId(), rec.GetSpanId(), line["trace_id"], line["span_id"])
		}
		if r.resource["service.name"] != "checkout" || r.resource["service.version"] != "1.4.2" || r.scope != "github.com/observekit/observe/logging" {
			t.Errorf("%q: resource %v scope %q", msg, r.resource, r.scope)
		}
		a := attrMap(rec)
		for k, v := range a {
			if !utf8.ValidString(v) {
				t.Errorf("%q: invalid UTF-8 in %s", msg, k)
			}
			if lv, ok := line[k]; ok {
				if s, isStr := lv.(string); isStr && s != v {
					t.Errorf("%q: %s exported %q, written %q", msg, k, v, s)
				}
			}
		}
	}
	for _, secret := range []string{"hunter2", "4111 1111 1111 1111", "jane@example.com", "k-123", "abcdefghijklmnopqrstuvwxyz0123"} {
		for _, r := range rcv.records() {
			if s := fmt.Sprint(r.rec.GetBody(), r.rec.GetAttributes()); strings.Contains(s, secret) {
				t.Errorf("exported record leaks %q: %s", secret, s)
			}
		}
		if strings.Contains(lb.String(), secret) {
			t.Errorf("line leaks %q", secret)
		}
	}
	if _, ok := got["hidden debug"]; ok {
		t.Error("a record below the level was exported")
	}
	slow := attrMap(got["slow query"].rec)
	if slow["logger"] != "db" || slow["table"] != "orders" || !strings.Contains(slow["q"], "ms=120") || !strings.Contains(slow["q"], "api_key=[REDACTED]") {
		t.Errorf("slow query attributes: %v", slow)
	}
}

func TestLogsOTLPOffWithSDKDisabled(t *testing.T) {
	rcv := startOTLPHTTPReceiver(t)
	obs, lb := logsInit(t, map[string]string{
		"OTEL_SDK_DISABLED":                "true",
		"OTEL_LOGS_EXPORTER":               "otlp",
		"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": rcv.url,
	})
	slog.Info("still a line")
	if err := obs.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rcv.records()) != 0 {
		t.Error("exported with OTEL_SDK_DISABLED=true")
	}
	if len(lb.find(t, "still a line")) != 1 {
		t.Error("no JSON line with OTEL_SDK_DISABLED=true")
	}
}

func TestLogsOTLPUnreachableIsNoError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	obs, lb := logsInit(t, map[string]string{
		"OTEL_LOGS_EXPORTER":               "otlp",
		"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://" + addr + "/v1/logs",
		"OTEL_EXPORTER_OTLP_TIMEOUT":       "300",
	})
	start := time.Now()
	slog.Info("line despite the collector")
	// Under the 300ms export timeout a wait on the network would take;
	// room above a scheduler stall on a loaded machine.
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("logging waited on the network: %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := obs.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown with an unreachable collector: %v", err)
	}
	if len(lb.find(t, "line despite the collector")) != 1 {
		t.Error("line lost")
	}
	if h, ok := obs.Logger().Handler().(*logging.Handler); !ok || h.ExportFailures() == 0 {
		t.Error("the failed export was not counted (observe_export_failures_total{signal=\"logs\"})")
	}
}
