package tracing

import (
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/observekit/observe/internal/testbackend"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The OTLP gRPC exporter's connection and http.Transport idle
		// connections close asynchronously.
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

func TestNewSampler(t *testing.T) {
	root := context.Background()
	tid := trace.TraceID{0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1} // low ratio-bound: sampled by any ratio > 0
	sampledParent := trace.ContextWithSpanContext(root, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	unsampledParent := trace.ContextWithSpanContext(root, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: trace.SpanID{1}, Remote: true,
	}))
	type want struct{ root, sampledParent, unsampledParent bool }
	cases := []struct {
		name, arg string
		want      want
	}{
		{"", "", want{true, true, false}},
		{"parentbased_always_on", "", want{true, true, false}},
		{"always_on", "", want{true, true, true}},
		{"always_off", "", want{false, false, false}},
		{"parentbased_always_off", "", want{false, true, false}},
		{"traceidratio", "1", want{true, true, true}},
		{"traceidratio", "0", want{false, false, false}},
		{"traceidratio", "", want{true, true, true}}, // spec default 1.0
		{"parentbased_traceidratio", "0", want{false, true, false}},
		{"parentbased_traceidratio", "0.5", want{true, true, false}},
	}
	for _, c := range cases {
		s, err := NewSampler(c.name, c.arg)
		if err != nil {
			t.Fatalf("NewSampler(%q, %q): %v", c.name, c.arg, err)
		}
		decide := func(ctx context.Context) bool {
			r := s.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid, Name: "x"})
			return r.Decision == sdktrace.RecordAndSample
		}
		got := want{decide(root), decide(sampledParent), decide(unsampledParent)}
		if got != c.want {
			t.Errorf("sampler %q arg %q: got %+v, want %+v", c.name, c.arg, got, c.want)
		}
		if c.name != "" && !IsSamplerName(c.name) {
			t.Errorf("IsSamplerName(%q) = false", c.name)
		}
	}
	for _, bad := range []struct{ name, arg string }{
		{"sometimes", ""}, {"traceidratio", "2"}, {"traceidratio", "-0.1"}, {"traceidratio", "half"},
		{"parentbased_traceidratio", "x"},
	} {
		if _, err := NewSampler(bad.name, bad.arg); err == nil {
			t.Errorf("NewSampler(%q, %q): no error", bad.name, bad.arg)
		}
	}
	if IsSamplerName("sometimes") {
		t.Error("IsSamplerName accepted an unknown name")
	}
}

func TestNewPropagator(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	member, _ := baggage.NewMember("tenant", "acme")
	bag, _ := baggage.New(member)
	ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), sc), bag)

	cases := []struct {
		names      []string
		headers    []string // set after Inject
		absent     []string
		carriesBag bool
		carriesSC  bool
	}{
		{[]string{"tracecontext", "baggage"}, []string{"Traceparent", "Baggage"}, []string{"B3", "X-B3-Traceid"}, true, true},
		{[]string{"tracecontext"}, []string{"Traceparent"}, []string{"Baggage"}, false, true},
		{[]string{"baggage"}, []string{"Baggage"}, []string{"Traceparent"}, true, false},
		{[]string{"b3"}, []string{"B3"}, []string{"Traceparent", "X-B3-Traceid"}, false, true},
		{[]string{"b3multi"}, []string{"X-B3-Traceid", "X-B3-Spanid", "X-B3-Sampled"}, []string{"B3", "Traceparent"}, false, true},
		{[]string{"none"}, nil, []string{"Traceparent", "Baggage", "B3"}, false, false},
		{nil, nil, []string{"Traceparent", "Baggage", "B3"}, false, false},
	}
	for _, c := range cases {
		p, err := NewPropagator(c.names)
		if err != nil {
			t.Fatalf("NewPropagator(%v): %v", c.names, err)
		}
		h := http.Header{}
		p.Inject(ctx, propagation.HeaderCarrier(h))
		for _, k := range c.headers {
			if h.Get(k) == "" {
				t.Errorf("%v: header %s not injected (got %v)", c.names, k, h)
			}
		}
		for _, k := range c.absent {
			if h.Get(k) != "" {
				t.Errorf("%v: header %s injected", c.names, k)
			}
		}
		out := p.Extract(context.Background(), propagation.HeaderCarrier(h))
		got := trace.SpanContextFromContext(out)
		if c.carriesSC != (got.TraceID() == sc.TraceID() && got.SpanID() == sc.SpanID() && got.IsSampled() && got.IsRemote()) {
			t.Errorf("%v: extracted span context %v", c.names, got)
		}
		if c.carriesBag != (baggage.FromContext(out).Member("tenant").Value() == "acme") {
			t.Errorf("%v: extracted baggage %v", c.names, baggage.FromContext(out))
		}
	}
	if _, err := NewPropagator([]string{"tracecontext", "carrier-pigeon"}); err == nil {
		t.Error("unknown propagator accepted")
	}
}

// startSpans makes n finished sampled spans on p.
func startSpans(p *Provider, n int, name string) {
	for range n {
		_, s := p.Tracer().Start(context.Background(), name)
		s.End()
	}
}

func TestExporterNoneAndMemoryKeepStore(t *testing.T) {
	for _, exp := range []string{"", exporterMemory, exporterNone} {
		p, err := New(context.Background(), Config{Exporter: exp, StoreSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		startSpans(p, 5, "s")
		if n := len(p.Store().Spans()); n != 3 {
			t.Errorf("exporter %q: store holds %d spans, want 3 (bounded)", exp, n)
		}
		if p.Store().spanTotal() != 5 {
			t.Errorf("exporter %q: total %d", exp, p.Store().spanTotal())
		}
		if p.DroppedSpans() != 0 || p.ExportFailures() != 0 {
			t.Errorf("exporter %q: counters %d %d", exp, p.DroppedSpans(), p.ExportFailures())
		}
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExporterConsole(t *testing.T) {
	var buf syncBuffer
	p, err := New(context.Background(), Config{Exporter: exporterConsole, Console: &buf})
	if err != nil {
		t.Fatal(err)
	}
	startSpans(p, 1, "console-span")
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"Name":"console-span"`) {
		t.Fatalf("console output lacks the span: %q", buf.String())
	}
	if p.ExportedSpans() != 1 {
		t.Errorf("ExportedSpans = %d", p.ExportedSpans())
	}
}

func TestExporterCustomRequiresExporter(t *testing.T) {
	if _, err := New(context.Background(), Config{Exporter: exporterCustom}); err == nil {
		t.Fatal("custom exporter without SpanExporter accepted")
	}
	if _, err := New(context.Background(), Config{Exporter: "kafka"}); err == nil {
		t.Fatal("unknown exporter accepted")
	}
	if _, err := New(context.Background(), Config{Exporter: exporterOTLP, OTLP: OTLPConfig{Protocol: "http/json"}}); err == nil {
		t.Fatal("unknown protocol accepted")
	}
}

// otlpHTTPReceiver records what the OTLP/HTTP exporter sends.
type otlpHTTPReceiver struct {
	mu      sync.Mutex
	paths   []string
	headers []http.Header
	spans   int
}

func (rc *otlpHTTPReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	b, _ := io.ReadAll(body)
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	n := 0
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	rc.mu.Lock()
	rc.paths = append(rc.paths, r.URL.Path)
	rc.headers = append(rc.headers, r.Header.Clone())
	rc.spans += n
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

func TestExporterOTLPHTTP(t *testing.T) {
	rc := &otlpHTTPReceiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	p, err := New(context.Background(), Config{
		Exporter: exporterOTLP,
		OTLP: OTLPConfig{
			Protocol:    "http/protobuf",
			Endpoint:    srv.URL + "/custom/v1/traces",
			Headers:     map[string]string{"X-Tenant": "acme"},
			Compression: "gzip",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	startSpans(p, 3, "http-span")
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.spans != 3 {
		t.Fatalf("receiver got %d spans, want 3", rc.spans)
	}
	if rc.paths[0] != "/custom/v1/traces" {
		t.Errorf("path %q", rc.paths[0])
	}
	if rc.headers[0].Get("X-Tenant") != "acme" || rc.headers[0].Get("Content-Encoding") != "gzip" {
		t.Errorf("headers %v", rc.headers[0])
	}
}

func TestExporterOTLPHTTPSWithCA(t *testing.T) {
	rc := &otlpHTTPReceiver{}
	srv := httptest.NewTLSServer(rc)
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	p, err := New(context.Background(), Config{
		Exporter: exporterOTLP,
		OTLP: OTLPConfig{
			Protocol: "http/protobuf",
			Endpoint: srv.URL + "/v1/traces",
			TLS:      &tls.Config{RootCAs: pool},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	startSpans(p, 2, "tls-span")
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.ExportFailures() != 0 || rc.spans != 2 {
		t.Fatalf("failures %d, spans %d", p.ExportFailures(), rc.spans)
	}
}

type grpcReceiver struct {
	coltrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	md    metadata.MD
	spans int
}

func (g *grpcReceiver) Export(ctx context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.md = md
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			g.spans += len(ss.Spans)
		}
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

func TestExporterOTLPGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	rc := &grpcReceiver{}
	coltrace.RegisterTraceServiceServer(gs, rc)
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()

	p, err := New(context.Background(), Config{
		Exporter: exporterOTLP,
		OTLP: OTLPConfig{
			Protocol: "grpc",
			Endpoint: "http://" + ln.Addr().String(), // http scheme: plain text, as the spec says
			Headers:  map[string]string{"authorization": "Bearer t0ken"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	startSpans(p, 4, "grpc-span")
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.spans != 4 {
		t.Fatalf("receiver got %d spans", rc.spans)
	}
	if got := rc.md.Get("authorization"); len(got) != 1 || got[0] != "Bearer t0ken" {
		t.Errorf("metadata %v", rc.md)
	}
}

func TestExporterUnreachableIsNotAnErrorAndFailuresCount(t *testing.T) {
	// A port nothing listens on.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	p, err := New(context.Background(), Config{
		Exporter: exporterOTLP,
		OTLP:     OTLPConfig{Protocol: "http/protobuf", Endpoint: "http://" + addr + "/v1/traces", Timeout: 300 * time.Millisecond},
		Batch:    BatchConfig{ExportTimeout: 500 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("New must not fail for an unreachable backend: %v", err)
	}
	startSpans(p, 3, "lost")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = p.ForceFlush(ctx)
	if p.ExportFailures() == 0 || p.DroppedSpans() != 3 {
		t.Fatalf("failures %d dropped %d, want >0 and 3", p.ExportFailures(), p.DroppedSpans())
	}
	_ = p.Shutdown(ctx)
}

// blockingExporter blocks every export until release is closed or the
// export's context ends.
type blockingExporter struct {
	release chan struct{}
	mu      sync.Mutex
	got     int
}

func (b *blockingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	select {
	case <-b.release:
		b.mu.Lock()
		b.got += len(spans)
		b.mu.Unlock()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *blockingExporter) Shutdown(context.Context) error { return nil }

func TestBoundedQueueCountsDrops(t *testing.T) {
	exp := &blockingExporter{release: make(chan struct{})}
	p, err := New(context.Background(), Config{
		Exporter:     exporterCustom,
		SpanExporter: exp,
		Batch:        BatchConfig{MaxQueueSize: 10, MaxExportBatchSize: 5, ScheduleDelay: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The worker takes the first 5 into a batch and blocks exporting it;
	// they count against the bound of 10, so 5 more are queued and the rest
	// are dropped.
	startSpans(p, 5, "a")
	waitFor(t, func() bool { return p.Store().spanTotal() == 5 })
	time.Sleep(50 * time.Millisecond) // let the worker pick the batch up
	startSpans(p, 100, "b")
	if d := p.DroppedSpans(); d < 90 || d > 95 {
		t.Fatalf("DroppedSpans = %d, want about 95", d)
	}
	close(exp.release)
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	exp.mu.Lock()
	got := exp.got
	exp.mu.Unlock()
	if uint64(got)+p.DroppedSpans() != 105 {
		t.Fatalf("exported %d + dropped %d != 105", got, p.DroppedSpans())
	}
}

func TestShutdownHonoursDeadline(t *testing.T) {
	exp := &blockingExporter{release: make(chan struct{})} // never released
	p, err := New(context.Background(), Config{Exporter: exporterCustom, SpanExporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	startSpans(p, 3, "stuck")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = p.Shutdown(ctx)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Shutdown took %v past its deadline", took)
	}
	if err == nil {
		t.Fatal("Shutdown past its deadline returned nil")
	}
	if p.ExportFailures() != 1 || p.DroppedSpans() != 3 {
		t.Fatalf("failures %d dropped %d", p.ExportFailures(), p.DroppedSpans())
	}
	// Idempotent.
	if err := p.Shutdown(context.Background()); err != nil {
		t.Logf("second Shutdown: %v", err)
	}
}

func TestForceFlushExportsQueued(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	p, err := New(context.Background(), Config{
		Exporter: exporterCustom, SpanExporter: exp,
		Batch: BatchConfig{ScheduleDelay: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	startSpans(p, 1200, "x") // more than two batches
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 1200 {
		t.Fatalf("exported %d after ForceFlush", n)
	}
}

func TestUnsampledSpansAreNotExported(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	s, _ := NewSampler("always_off", "")
	p, err := New(context.Background(), Config{Exporter: exporterCustom, SpanExporter: exp, Sampler: s})
	if err != nil {
		t.Fatal(err)
	}
	startSpans(p, 10, "x")
	_ = p.Shutdown(context.Background())
	if len(exp.GetSpans()) != 0 || len(p.Store().Spans()) != 0 {
		t.Fatal("unsampled spans exported or stored")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	if !testbackend.Eventually(5*time.Second, cond) {
		t.Fatal("condition not met in 5s")
	}
}

type syncBuffer = testbackend.LockedBuffer

func TestStartAttributesObserved(t *testing.T) {
	s, _ := NewSampler("traceidratio", "0.5")
	for _, c := range []struct {
		cfg  Config
		want bool
	}{
		{Config{}, false},
		{Config{Sampler: s}, false},
		{Config{Sampler: sdktrace.AlwaysSample()}, true}, // not one of NewSampler's: may read them
		{Config{ExtraProcessors: []sdktrace.SpanProcessor{tracetest.NewSpanRecorder()}}, true},
	} {
		p, err := New(context.Background(), c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.StartAttributesObserved(); got != c.want {
			t.Errorf("%+v: StartAttributesObserved = %v", c.cfg, got)
		}
		_ = p.Shutdown(context.Background())
	}
}
