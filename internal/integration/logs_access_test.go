package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// The access log: one INFO line per request from middleware.HTTP and the
// gRPC server, health endpoints skipped, switchable by option and
// OBSERVE_ACCESS_LOG.

func accessMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.PathValue("id"))
	})
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusTeapot)
	})
	for _, p := range []string{"/livez", "/readyz", "/startupz", "/healthz", "/metrics"} {
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	}
	return mux
}

func accessServe(h http.Handler, method, target string) {
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, target, nil))
}

func TestLogsAccessLogHTTP(t *testing.T) {
	_, lb := logsInit(t, nil)
	h := middleware.HTTP(accessMux())
	accessServe(h, "GET", "/users/42?token=abc")
	accessServe(h, "POST", "/fail")
	accessServe(h, "GET", "/nowhere")
	for _, p := range []string{"/livez", "/readyz", "/startupz", "/healthz", "/metrics", "/healthz/"} {
		accessServe(h, "GET", p)
	}
	lines := lb.find(t, "request")
	if len(lines) != 3 {
		t.Fatalf("%d access lines, want 3 (health endpoints skipped):\n%s", len(lines), lb.String())
	}
	ok := lines[0]
	want := map[string]any{
		"level": "INFO", "logger": "observe.access", "http.request.method": "GET", "http.route": "/users/{id}",
		"url.path": "/users/42", "http.response.status_code": float64(200), "http.response.body.size": float64(len("hello 42")),
		"service.name": "checkout",
	}
	for k, v := range want {
		if ok[k] != v {
			t.Errorf("%s = %v (%T), want %v", k, ok[k], ok[k], v)
		}
	}
	if d, isNum := ok["duration_ms"].(float64); !isNum || d < 0 || d > 10_000 {
		t.Errorf("duration_ms = %v", ok["duration_ms"])
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(fmt.Sprint(ok["trace_id"])) || ok["span_id"] == nil {
		t.Errorf("access line not correlated: %v", ok)
	}
	if strings.Contains(lb.String(), "token=abc") {
		t.Error("the query string reached the access log")
	}
	if lines[1]["http.response.status_code"] != float64(418) || lines[1]["http.route"] != "/fail" {
		t.Errorf("failed request line: %v", lines[1])
	}
	if lines[2]["http.route"] != "" || lines[2]["http.response.status_code"] != float64(404) {
		t.Errorf("unrouted request line: %v", lines[2])
	}
}

func TestLogsAccessLogSwitches(t *testing.T) {
	t.Run("env off", func(t *testing.T) {
		_, lb := logsInit(t, map[string]string{"OBSERVE_ACCESS_LOG": "off"})
		accessServe(middleware.HTTP(accessMux()), "GET", "/users/1")
		accessServe(middleware.HTTP(accessMux(), middleware.WithAccessLog(true)), "GET", "/users/2")
		lines := lb.find(t, "request")
		if len(lines) != 1 || lines[0]["url.path"] != "/users/2" {
			t.Errorf("OBSERVE_ACCESS_LOG=off with a per-middleware override: %v", lines)
		}
	})
	t.Run("option off", func(t *testing.T) {
		_, lb := logsInit(t, map[string]string{"OBSERVE_ACCESS_LOG": "on"}, observe.WithAccessLog(false))
		accessServe(middleware.HTTP(accessMux()), "GET", "/users/1")
		if n := len(lb.find(t, "request")); n != 0 {
			t.Errorf("WithAccessLog(false) wrote %d lines", n)
		}
	})
	t.Run("middleware option off", func(t *testing.T) {
		_, lb := logsInit(t, nil)
		accessServe(middleware.HTTP(accessMux(), middleware.WithAccessLog(false)), "GET", "/users/1")
		if n := len(lb.find(t, "request")); n != 0 {
			t.Errorf("middleware.WithAccessLog(false) wrote %d lines", n)
		}
	})
	t.Run("silenced by level", func(t *testing.T) {
		obs, lb := logsInit(t, nil)
		if _, err := instance.Of(obs).Levels.Set("observe.access", slog.LevelWarn, 0, nil); err != nil {
			t.Fatal(err)
		}
		accessServe(middleware.HTTP(accessMux()), "GET", "/users/1")
		if n := len(lb.find(t, "request")); n != 0 {
			t.Errorf("observe.access at WARN wrote %d lines", n)
		}
	})
	t.Run("bad env", func(t *testing.T) {
		for _, v := range logsEnvVars {
			t.Setenv(v, "")
		}
		t.Setenv("OBSERVE_ACCESS_LOG", "sometimes")
		t.Setenv("OBSERVE_ADMIN_ADDR", "off")
		_, err := observe.Init(context.Background())
		if err == nil || !strings.Contains(err.Error(), "OBSERVE_ACCESS_LOG") {
			t.Errorf("bad OBSERVE_ACCESS_LOG: %v", err)
		}
	})
}

// A unary test service on the health messages, so the test needs no
// generated code: test.Echo/Ping logs at DEBUG and INFO.
var echoDesc = grpc.ServiceDesc{
	ServiceName: "test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Ping",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(healthpb.HealthCheckRequest)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, req any) (any, error) {
				slog.DebugContext(ctx, "ping debug")
				md, _ := metadata.FromIncomingContext(ctx)
				slog.InfoContext(ctx, "ping", "saw_debug_md", len(md.Get("x-observe-debug")) > 0)
				return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
			}
			if interceptor == nil {
				return h(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Echo/Ping"}, h)
		},
	}},
}

func TestLogsAccessLogAndDebugGRPC(t *testing.T) {
	_, lb := logsInit(t, map[string]string{"OBSERVE_DEBUG_TOKEN": "grpc-tok"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(middleware.GRPCServer()...)
	srv.RegisterService(&echoDesc, struct{}{})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	defer srv.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), append(middleware.GRPCClient(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ping := func(ctx context.Context) {
		t.Helper()
		if err := conn.Invoke(ctx, "/test.Echo/Ping", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{}); err != nil {
			t.Fatal(err)
		}
	}
	ping(ctx)
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	ping(metadata.AppendToOutgoingContext(ctx, "x-observe-debug", "wrong"))
	// The debug call runs under a client span of its own, so its trace is
	// known here: the server's End event (and so its access line) may come
	// after the client has its answer, and the access lines' order is not
	// the calls' order.
	dctx, dspan := otel.Tracer("test").Start(ctx, "debug call")
	ping(metadata.AppendToOutgoingContext(dctx, "x-observe-debug", "grpc-tok"))
	dspan.End()
	debugTrace := dspan.SpanContext().TraceID().String()

	logsEventually(t, 5*time.Second, "the access lines", func() bool { return len(lb.find(t, "rpc")) >= 3 })
	rpcs := lb.find(t, "rpc")
	if len(rpcs) != 3 {
		t.Fatalf("%d rpc access lines, want 3 (health skipped): %v", len(rpcs), rpcs)
	}
	r := rpcs[0]
	if r["rpc.method"] != "test.Echo/Ping" || r["rpc.response.status_code"] != "OK" || r["logger"] != "observe.access" || r["trace_id"] == nil {
		t.Errorf("rpc access line: %v", r)
	}
	if _, ok := r["duration_ms"].(float64); !ok {
		t.Errorf("duration_ms: %v", r)
	}
	debug := lb.find(t, "ping debug")
	if len(debug) != 1 || debug[0]["trace_id"] != debugTrace {
		t.Errorf("per-request debug over gRPC: %v, want one line in trace %s", debug, debugTrace)
	}
	found := false
	for _, r := range rpcs {
		found = found || r["trace_id"] == debugTrace
	}
	if !found {
		t.Errorf("no access line for the debug call's trace %s: %v", debugTrace, rpcs)
	}
	for _, p := range lb.find(t, "ping") {
		if p["saw_debug_md"] != false {
			t.Errorf("the handler saw x-observe-debug: %v", p)
		}
	}
	if strings.Contains(lb.String(), "grpc-tok") {
		t.Error("token logged")
	}
}
