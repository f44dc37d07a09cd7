package metrics

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
)

func newMetrics(t testing.TB, cfg Config) *Metrics {
	t.Helper()
	cfg.DisableRuntimeCollectors = true
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// family gathers m and returns the named family (nil when absent).
func family(t testing.TB, m *Metrics, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// series returns the label sets of a family, as "k=v,k=v" strings.
func series(t testing.TB, m *Metrics, name string) map[string]*dto.Metric {
	t.Helper()
	out := map[string]*dto.Metric{}
	mf := family(t, m, name)
	if mf == nil {
		return out
	}
	for _, mm := range mf.GetMetric() {
		var parts []string
		for _, lp := range mm.GetLabel() {
			parts = append(parts, lp.GetName()+"="+lp.GetValue())
		}
		out[strings.Join(parts, ",")] = mm
	}
	return out
}

func overflow(t testing.TB, m *Metrics, metric string) float64 {
	t.Helper()
	mf := family(t, m, "observe_metric_overflow_total")
	if mf == nil {
		return 0
	}
	for _, mm := range mf.GetMetric() {
		if labels(mm)["metric"] == metric {
			return mm.GetCounter().GetValue()
		}
	}
	return 0
}

var sampled = trace.NewSpanContext(trace.SpanContextConfig{
	TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
	SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	TraceFlags: trace.FlagsSampled,
})

func TestHTTPServerLabels(t *testing.T) {
	m := newMetrics(t, Config{})
	s := m.HTTPServer
	s.Observe("GET", "/users/{id}", 200, 10*time.Millisecond, trace.SpanContext{})
	s.Observe("BREW", "/users/{id}", 200, time.Millisecond, trace.SpanContext{})    // odd method
	s.Observe("get", "/users/{id}", 200, time.Millisecond, trace.SpanContext{})     // methods are case-sensitive
	s.Observe("GET", "", 404, time.Millisecond, trace.SpanContext{})                // nothing matched
	s.Observe("GET", "/users/{id}", 999, time.Millisecond, trace.SpanContext{})     // status out of range
	s.Observe("GET", "/users/{id}", 42, time.Millisecond, trace.SpanContext{})      // status out of range
	s.Observe("GET", "/\xff\xfe", 200, time.Millisecond, trace.SpanContext{})       // not UTF-8: client_golang would panic
	s.Observe("GET", "/"+strings.Repeat("a", 300), 200, 0, trace.SpanContext{})     // too long
	s.Observe("POST", "/upload", 201, time.Millisecond, trace.SpanContext{})        // no sizes
	s.ObserveWithSizes("POST", "/upload", 201, time.Millisecond, 1000, 12, sampled) // sizes

	got := series(t, m, HTTPServerDuration)
	want := []string{
		"http_request_method=GET,http_response_status_code=200,http_route=/users/{id}",
		"http_request_method=_OTHER,http_response_status_code=200,http_route=/users/{id}",
		"http_request_method=GET,http_response_status_code=404,http_route=",
		"http_request_method=GET,http_response_status_code=_OTHER,http_route=/users/{id}",
		"http_request_method=GET,http_response_status_code=200,http_route=_OTHER",
		"http_request_method=POST,http_response_status_code=201,http_route=/upload",
	}
	for _, w := range want {
		if got[w] == nil {
			t.Errorf("missing series %s; have %v", w, keys(got))
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), keys(got))
	}
	if c := got["http_request_method=_OTHER,http_response_status_code=200,http_route=/users/{id}"].GetHistogram().GetSampleCount(); c != 2 {
		t.Errorf("_OTHER method count = %d, want 2", c)
	}
	if c := got["http_request_method=GET,http_response_status_code=_OTHER,http_route=/users/{id}"].GetHistogram().GetSampleCount(); c != 2 {
		t.Errorf("_OTHER status count = %d, want 2", c)
	}
	if c := got["http_request_method=GET,http_response_status_code=200,http_route=_OTHER"].GetHistogram().GetSampleCount(); c != 2 {
		t.Errorf("_OTHER route count = %d, want 2", c)
	}
	if n := overflow(t, m, HTTPServerDuration); n != 0 {
		t.Errorf("overflow = %v, want 0: bad values are _OTHER by design, not overflow", n)
	}
	req := series(t, m, httpServerRequestSize)["http_request_method=POST,http_response_status_code=201,http_route=/upload"]
	resp := series(t, m, httpServerResponseSize)["http_request_method=POST,http_response_status_code=201,http_route=/upload"]
	if req.GetHistogram().GetSampleCount() != 1 || req.GetHistogram().GetSampleSum() != 1000 {
		t.Errorf("request size: %v", req.GetHistogram())
	}
	if resp.GetHistogram().GetSampleCount() != 1 || resp.GetHistogram().GetSampleSum() != 12 {
		t.Errorf("response size: %v", resp.GetHistogram())
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestHTTPServerSeriesLimit(t *testing.T) {
	const limit = 20
	m := newMetrics(t, Config{SeriesLimit: limit})
	for i := range 100 {
		m.HTTPServer.Observe("GET", fmt.Sprintf("/r%d", i), 200, time.Millisecond, trace.SpanContext{})
	}
	got := series(t, m, HTTPServerDuration)
	if len(got) != limit+1 {
		t.Fatalf("got %d series, want %d (limit + the _OTHER route)", len(got), limit+1)
	}
	other := got["http_request_method=GET,http_response_status_code=200,http_route=_OTHER"]
	if c := other.GetHistogram().GetSampleCount(); c != 80 {
		t.Errorf("_OTHER route holds %d observations, want 80", c)
	}
	if n := overflow(t, m, HTTPServerDuration); n != 80 {
		t.Errorf("observe_metric_overflow_total = %v, want 80", n)
	}
	if got := m.Overflows(); len(got) != 1 || got[HTTPServerDuration] != 80 {
		t.Errorf("Overflows() = %v, want %s: 80", got, HTTPServerDuration)
	}
	// An existing series keeps working past the limit.
	m.HTTPServer.Observe("GET", "/r1", 200, time.Millisecond, trace.SpanContext{})
	if c := series(t, m, HTTPServerDuration)["http_request_method=GET,http_response_status_code=200,http_route=/r1"].GetHistogram().GetSampleCount(); c != 2 {
		t.Errorf("/r1 count = %d, want 2", c)
	}
	// The size histograms follow the duration's series, created when a
	// size is first known.
	if n := len(series(t, m, httpServerRequestSize)); n != 0 {
		t.Errorf("request size series = %d before any size, want 0", n)
	}
	m.HTTPServer.ObserveWithSizes("GET", "/new", 200, time.Millisecond, 1, 1, trace.SpanContext{})
	if n := len(series(t, m, httpServerRequestSize)); n != 1 {
		t.Errorf("request size series = %d, want 1", n)
	}
	if _, ok := series(t, m, httpServerRequestSize)["http_request_method=GET,http_response_status_code=200,http_route=_OTHER"]; !ok {
		t.Error("request size of an overflowed request is not under _OTHER")
	}
}

// TestSeriesHardBound throws every method, status and a flood of routes at
// one metric: it never holds more than limit + OverflowReserve + 1 series.
func TestSeriesHardBound(t *testing.T) {
	const limit = 10
	m := newMetrics(t, Config{SeriesLimit: limit})
	methods := []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "BREW"}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 20000 {
				m.HTTPServer.Observe(methods[r.IntN(len(methods))], fmt.Sprintf("/p/%d", r.Int()), 100+r.IntN(520), time.Millisecond, trace.SpanContext{})
				m.HTTPClient.observe(methods[r.IntN(len(methods))], fmt.Sprintf("h%d.example", r.Int()), r.IntN(700), time.Millisecond, trace.SpanContext{})
				m.RPCServer.Observe(fmt.Sprintf("pkg.S%d/M", r.Int()), uint32(r.IntN(20)), time.Millisecond, trace.SpanContext{})
			}
		}()
	}
	wg.Wait()
	for name, n := range map[string]int{
		HTTPServerDuration:                 m.HTTPServer.Series(),
		httpClientDuration:                 m.HTTPClient.seriesCount(),
		"rpc_server_call_duration_seconds": m.RPCServer.Series(),
	} {
		if got := len(series(t, m, name)); got != n {
			t.Errorf("%s: Series() = %d, exposed %d", name, n, got)
		}
		if n > limit+overflowReserve+1 {
			t.Errorf("%s holds %d series, above the bound %d", name, n, limit+overflowReserve+1)
		}
		if _, ok := labelsHaving(series(t, m, name), "_OTHER"); !ok {
			t.Errorf("%s: no _OTHER series", name)
		}
	}
}

func labelsHaving(s map[string]*dto.Metric, v string) (string, bool) {
	for k := range s {
		if strings.Contains(k, "="+v) {
			return k, true
		}
	}
	return "", false
}

func TestHTTPClientServerAddressCap(t *testing.T) {
	const limit = 5
	m := newMetrics(t, Config{SeriesLimit: limit})
	for i := range 50 {
		m.HTTPClient.observe("GET", fmt.Sprintf("api%d.example.com", i), 200, time.Millisecond, trace.SpanContext{})
	}
	got := series(t, m, httpClientDuration)
	if len(got) != limit+1 {
		t.Fatalf("got %d series, want %d: %v", len(got), limit+1, keys(got))
	}
	if c := got["http_request_method=GET,http_response_status_code=200,server_address=_OTHER"].GetHistogram().GetSampleCount(); c != 45 {
		t.Errorf("_OTHER server_address holds %d, want 45", c)
	}
	if n := overflow(t, m, httpClientDuration); n != 45 {
		t.Errorf("overflow = %v, want 45", n)
	}
}

// TestHTTPClientNoResponse: a request that got no response (canceled, timed
// out, connection refused) is recorded with an empty status code, apart
// from the 5xx a server answered.
func TestHTTPClientNoResponse(t *testing.T) {
	m := newMetrics(t, Config{})
	m.HTTPClient.ObserveWithSizes("POST", "api.example.com", 0, time.Millisecond, 10, -1, trace.SpanContext{})
	m.HTTPClient.observe("POST", "api.example.com", 503, time.Millisecond, trace.SpanContext{})
	m.HTTPClient.observe("POST", "api.example.com", 1000, time.Millisecond, trace.SpanContext{})
	got := series(t, m, httpClientDuration)
	for _, w := range []string{
		"http_request_method=POST,http_response_status_code=,server_address=api.example.com",
		"http_request_method=POST,http_response_status_code=503,server_address=api.example.com",
		"http_request_method=POST,http_response_status_code=_OTHER,server_address=api.example.com",
	} {
		if got[w].GetHistogram().GetSampleCount() != 1 {
			t.Errorf("want one observation in %s; have %v", w, keys(got))
		}
	}
	resp := series(t, m, httpClientResponseSize)
	if c := resp["http_request_method=POST,http_response_status_code=,server_address=api.example.com"].GetHistogram().GetSampleCount(); c != 0 {
		t.Errorf("unknown response size recorded %d times", c)
	}
}

func TestRPCMethods(t *testing.T) {
	m := newMetrics(t, Config{SeriesLimit: 50})
	r := m.RPCServer
	r.Observe("/helloworld.Greeter/SayHello", 0, time.Millisecond, trace.SpanContext{})
	r.Observe("helloworld.Greeter/SayHello", 5, time.Millisecond, trace.SpanContext{})
	r.Observe("helloworld.Greeter/SayHello", 13, time.Millisecond, trace.SpanContext{}) // a panic
	r.Observe("helloworld.Greeter/SayHello", 1, time.Millisecond, trace.SpanContext{})  // canceled by the client
	r.Observe("helloworld.Greeter/SayHello", 99, time.Millisecond, trace.SpanContext{}) // not a code
	r.Observe(Other, 12, time.Millisecond, trace.SpanContext{})
	r.Observe("not a method", 12, time.Millisecond, trace.SpanContext{})
	r.Observe("/a.B/\xff", 12, time.Millisecond, trace.SpanContext{})
	got := series(t, m, "rpc_server_call_duration_seconds")
	for _, w := range []string{
		"rpc_method=helloworld.Greeter/SayHello,rpc_response_status_code=OK,rpc_system_name=grpc",
		"rpc_method=helloworld.Greeter/SayHello,rpc_response_status_code=NOT_FOUND,rpc_system_name=grpc",
		"rpc_method=helloworld.Greeter/SayHello,rpc_response_status_code=INTERNAL,rpc_system_name=grpc",
		"rpc_method=helloworld.Greeter/SayHello,rpc_response_status_code=CANCELLED,rpc_system_name=grpc",
		"rpc_method=helloworld.Greeter/SayHello,rpc_response_status_code=_OTHER,rpc_system_name=grpc",
		"rpc_method=_OTHER,rpc_response_status_code=UNIMPLEMENTED,rpc_system_name=grpc",
	} {
		if got[w] == nil {
			t.Errorf("missing %s; have %v", w, keys(got))
		}
	}
	if c := got["rpc_method=_OTHER,rpc_response_status_code=UNIMPLEMENTED,rpc_system_name=grpc"].GetHistogram().GetSampleCount(); c != 3 {
		t.Errorf("_OTHER method holds %d, want 3", c)
	}
	if len(got) != 6 {
		t.Errorf("%d series, want 6: %v", len(got), keys(got))
	}
}

// TestRPCUnknownMethodsBounded: with the server's methods known, a scan of
// 1000 made-up methods adds one series and overflows nothing; the methods
// served keep their own series.
func TestRPCUnknownMethodsBounded(t *testing.T) {
	m := newMetrics(t, Config{})
	known := map[string]bool{"helloworld.Greeter/SayHello": true}
	m.RPCServer.SetKnownMethods(func(s string) bool { return known[s] })
	m.RPCServer.Observe("/helloworld.Greeter/SayHello", 0, time.Millisecond, trace.SpanContext{})
	for i := range 1000 {
		m.RPCServer.Observe(fmt.Sprintf("/scan.Service%d/Method", i), 12, time.Millisecond, trace.SpanContext{})
	}
	got := series(t, m, "rpc_server_call_duration_seconds")
	if len(got) != 2 {
		t.Fatalf("%d series, want 2: %v", len(got), keys(got))
	}
	if c := got["rpc_method=_OTHER,rpc_response_status_code=UNIMPLEMENTED,rpc_system_name=grpc"].GetHistogram().GetSampleCount(); c != 1000 {
		t.Errorf("_OTHER holds %d, want 1000", c)
	}
	if n := overflow(t, m, "rpc_server_call_duration_seconds"); n != 0 {
		t.Errorf("overflow = %v: unknown methods are _OTHER by design", n)
	}
	// Without a filter the cap still holds.
	for i := range 3000 {
		m.RPCClient.Observe(fmt.Sprintf("scan.Service%d/Method", i), 0, time.Millisecond, trace.SpanContext{})
	}
	if n := m.RPCClient.Series(); n != defaultSeriesLimit+1 {
		t.Errorf("client series = %d, want %d", n, defaultSeriesLimit+1)
	}
	if n := overflow(t, m, "rpc_client_call_duration_seconds"); n != 2000 {
		t.Errorf("client overflow = %v, want 2000", n)
	}
}

func TestExemplars(t *testing.T) {
	m := newMetrics(t, Config{ExemplarInterval: time.Hour})
	m.HTTPServer.Observe("GET", "/a", 200, 3*time.Millisecond, sampled)
	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}})
	m.HTTPServer.Observe("GET", "/a", 200, 30*time.Millisecond, unsampled)
	// Same bucket within the interval: the first exemplar stays.
	other := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{2}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	m.HTTPServer.Observe("GET", "/a", 200, 4*time.Millisecond, other)
	// Another bucket: its own exemplar.
	m.HTTPServer.Observe("GET", "/a", 200, 2*time.Second, other)

	h := series(t, m, HTTPServerDuration)["http_request_method=GET,http_response_status_code=200,http_route=/a"].GetHistogram()
	var ex []map[string]string
	for _, b := range h.GetBucket() {
		if e := b.GetExemplar(); e != nil {
			ex = append(ex, labelPairs(e.GetLabel()))
		}
	}
	if len(ex) != 2 {
		t.Fatalf("got %d exemplars, want 2: %v", len(ex), ex)
	}
	if ex[0]["trace_id"] != sampled.TraceID().String() || ex[0]["span_id"] != sampled.SpanID().String() {
		t.Errorf("first bucket's exemplar = %v, want trace %s span %s", ex[0], sampled.TraceID(), sampled.SpanID())
	}
	if ex[1]["trace_id"] != other.TraceID().String() {
		t.Errorf("second exemplar = %v", ex[1])
	}
	for _, e := range ex {
		if len(e) != 2 {
			t.Errorf("exemplar labels %v: want exactly trace_id and span_id", e)
		}
	}
	// RPC and client durations carry exemplars too.
	m.RPCClient.Observe("a.B/C", 0, time.Millisecond, sampled)
	m.HTTPClient.observe("GET", "a.example", 200, time.Millisecond, sampled)
	for _, name := range []string{"rpc_client_call_duration_seconds", httpClientDuration} {
		n := 0
		for _, s := range series(t, m, name) {
			for _, b := range s.GetHistogram().GetBucket() {
				if b.GetExemplar() != nil {
					n++
				}
			}
		}
		if n != 1 {
			t.Errorf("%s: %d exemplars, want 1", name, n)
		}
	}
}

func labelPairs(lps []*dto.LabelPair) map[string]string {
	out := map[string]string{}
	for _, lp := range lps {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// TestExemplarConcurrent hammers one series with sampled observations from
// many goroutines: no panic, no race, every observation counted.
func TestExemplarConcurrent(t *testing.T) {
	m := newMetrics(t, Config{ExemplarInterval: time.Nanosecond})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{byte(g), byte(i)}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
				m.HTTPServer.Observe("GET", "/", 200, time.Duration(i)*time.Millisecond, sc)
			}
		}()
	}
	wg.Wait()
	if c := series(t, m, HTTPServerDuration)["http_request_method=GET,http_response_status_code=200,http_route=/"].GetHistogram().GetSampleCount(); c != 16000 {
		t.Errorf("count = %d, want 16000", c)
	}
}

func TestHandlerNegotiation(t *testing.T) {
	m := newMetrics(t, Config{})
	m.HTTPServer.Observe("GET", "/a", 200, 3*time.Millisecond, sampled)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	get := func(accept string) (string, string) {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Header.Get("Content-Type"), string(b)
	}
	ct, body := get("")
	if !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("no Accept: Content-Type %q, want text/plain", ct)
	}
	if strings.Contains(body, "trace_id") {
		t.Error("the text format carries exemplars")
	}
	if !strings.Contains(body, `http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/a",le="0.005"} 1`) {
		t.Errorf("text body lacks the bucket line:\n%s", body)
	}
	ct, body = get("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
	if !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("OpenMetrics Accept: Content-Type %q", ct)
	}
	exemplar := regexp.MustCompile(`http_route="/a",le="0.005"} 1 # \{(\w+)="(\w+)",(\w+)="(\w+)"\} 0.003 `).FindStringSubmatch(body)
	if exemplar == nil {
		t.Fatalf("OpenMetrics body lacks the exemplar:\n%s", body)
	}
	got := map[string]string{exemplar[1]: exemplar[2], exemplar[3]: exemplar[4]}
	if got["trace_id"] != sampled.TraceID().String() || got["span_id"] != sampled.SpanID().String() {
		t.Errorf("exemplar %v, want trace %s span %s", got, sampled.TraceID(), sampled.SpanID())
	}
	if !strings.HasSuffix(body, "# EOF\n") {
		t.Error("OpenMetrics body does not end with # EOF")
	}
}

func TestNativeHistograms(t *testing.T) {
	m := newMetrics(t, Config{NativeHistograms: true})
	for i := 1; i <= 100; i++ {
		m.HTTPServer.ObserveWithSizes("GET", "/a", 200, time.Duration(i)*time.Millisecond, int64(i), int64(i*10), trace.SpanContext{})
	}
	for _, name := range []string{HTTPServerDuration, httpServerResponseSize} {
		h := series(t, m, name)["http_request_method=GET,http_response_status_code=200,http_route=/a"].GetHistogram()
		if h.Schema == nil || len(h.GetPositiveSpan()) == 0 {
			t.Errorf("%s: no native histogram (schema %v, spans %d)", name, h.Schema, len(h.GetPositiveSpan()))
		}
		if len(h.GetBucket()) == 0 {
			t.Errorf("%s: classic buckets are gone", name)
		}
	}
	m2 := newMetrics(t, Config{})
	m2.HTTPServer.Observe("GET", "/a", 200, time.Millisecond, trace.SpanContext{})
	if h := series(t, m2, HTTPServerDuration)["http_request_method=GET,http_response_status_code=200,http_route=/a"].GetHistogram(); h.Schema != nil {
		t.Error("native histogram without the option")
	}
}

func TestBuckets(t *testing.T) {
	m := newMetrics(t, Config{})
	m.HTTPServer.Observe("GET", "/a", 200, time.Millisecond, trace.SpanContext{})
	var got []float64
	for _, b := range series(t, m, HTTPServerDuration)["http_request_method=GET,http_response_status_code=200,http_route=/a"].GetHistogram().GetBucket() {
		got = append(got, b.GetUpperBound())
	}
	if fmt.Sprint(got) != fmt.Sprint(DefaultDurationBuckets) {
		t.Errorf("buckets %v, want the semconv ones %v", got, DefaultDurationBuckets)
	}
	custom := newMetrics(t, Config{DurationBuckets: []float64{0.1, 1}})
	custom.RPCServer.Observe("a.B/C", 0, time.Millisecond, trace.SpanContext{})
	if n := len(series(t, custom, "rpc_server_call_duration_seconds")["rpc_method=a.B/C,rpc_response_status_code=OK,rpc_system_name=grpc"].GetHistogram().GetBucket()); n != 2 {
		t.Errorf("custom buckets: %d, want 2", n)
	}
	if _, err := New(Config{DurationBuckets: []float64{1, 0.5}}); err == nil {
		t.Error("unsorted buckets accepted")
	}
}

func TestActiveRequests(t *testing.T) {
	m := newMetrics(t, Config{})
	g := m.HTTPServer.Start("GET")
	m.HTTPServer.Start("BREW")
	got := series(t, m, httpServerActive)
	if v := got["http_request_method=GET"].GetGauge().GetValue(); v != 1 {
		t.Errorf("GET active = %v", v)
	}
	if v := got["http_request_method=_OTHER"].GetGauge().GetValue(); v != 1 {
		t.Errorf("_OTHER active = %v", v)
	}
	g.Dec()
	if v := series(t, m, httpServerActive)["http_request_method=GET"].GetGauge().GetValue(); v != 0 {
		t.Errorf("GET active after Dec = %v", v)
	}
}

func TestTargetInfoAndBuildInfo(t *testing.T) {
	res := resource.NewSchemaless(
		attribute.String("service.name", "checkout"),
		attribute.String("service.version", "1.4.2"),
		attribute.String("deployment.environment", "prod"),
		attribute.String("9lives", "x"),
		attribute.String("__reserved", "y"),
	)
	m := newMetrics(t, Config{Resource: res})
	mf := family(t, m, "target_info")
	if mf == nil || len(mf.GetMetric()) != 1 {
		t.Fatalf("target_info: %v", mf)
	}
	got := labels(mf.GetMetric()[0])
	want := map[string]string{"service_name": "checkout", "service_version": "1.4.2", "deployment_environment": "prod", "key_9lives": "x", "key__reserved": "y"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("target_info %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if mf.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Error("target_info is not 1")
	}
	if family(t, m, "go_build_info") == nil {
		t.Error("no go_build_info")
	}
}

func TestSelfTelemetry(t *testing.T) {
	m := newMetrics(t, Config{})
	// Before anything is wired: series counts and the limit only.
	if family(t, m, "observe_spans_dropped_total") != nil {
		t.Error("observe_spans_dropped_total without a source")
	}
	kinds := map[string]uint64{"card": 3, "jwt": 1, "bad\xff": 5}
	for i := range 100 {
		kinds[fmt.Sprintf("custom%d", i)] = 1
	}
	m.SetSelfTelemetry(SelfTelemetry{
		SpansDropped:    func() uint64 { return 7 },
		LogsDropped:     func() uint64 { return 8 },
		ProfilesDropped: func() uint64 { return 9 },
		ExportFailures:  func() map[string]uint64 { return map[string]uint64{"traces": 2, "logs": 0} },
		Redactions:      func() map[string]uint64 { return kinds },
	})
	for name, want := range map[string]float64{
		"observe_spans_dropped_total":    7,
		"observe_logs_dropped_total":     8,
		"observe_profiles_dropped_total": 9,
	} {
		mf := family(t, m, name)
		if mf == nil || mf.GetMetric()[0].GetCounter().GetValue() != want {
			t.Errorf("%s = %v, want %v", name, mf, want)
		}
	}
	ef := series(t, m, "observe_export_failures_total")
	if ef["signal=traces"].GetCounter().GetValue() != 2 || ef["signal=logs"] == nil {
		t.Errorf("export failures: %v", keys(ef))
	}
	red := series(t, m, "observe_redactions_total")
	if len(red) > 65 {
		t.Errorf("%d redaction kinds exposed: unbounded", len(red))
	}
	var total float64
	for _, s := range red {
		total += s.GetCounter().GetValue()
	}
	if total != 3+1+5+100 {
		t.Errorf("redactions add up to %v, want 109 (none lost to the bound)", total)
	}
	if red["kind=_OTHER"] == nil {
		t.Error("no _OTHER kind for the overflow and the bad key")
	}
	m.HTTPServer.Observe("GET", "/", 200, 0, trace.SpanContext{})
	if v := series(t, m, "observe_metric_series")["metric="+HTTPServerDuration].GetGauge().GetValue(); v != 1 {
		t.Errorf("observe_metric_series = %v, want 1", v)
	}
}
