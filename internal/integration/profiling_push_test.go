package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/internal/profiling"
	"github.com/observekit/observe/internal/testbackend"
	"github.com/observekit/observe/internal/tracing"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.uber.org/goleak"
)

// Continuous profiling through observe.Init, against a receiver speaking
// Pyroscope's ingest protocol that parses every upload with
// github.com/google/pprof/profile (a malformed one fails the test).

func TestProfilingPushNamedTaggedAuthenticated(t *testing.T) {
	recv := testbackend.StartPyroscope(t, testbackend.WithPyroscopeBasicAuth("pyro", "pw"))
	obs := profInit(t, map[string]string{
		"PYROSCOPE_SERVER_ADDRESS":      recv.URL,
		"PYROSCOPE_BASIC_AUTH_USER":     "pyro",
		"PYROSCOPE_BASIC_AUTH_PASSWORD": "pw",
	}, observe.WithProfileUploadInterval(time.Second))
	if !instance.Of(obs).Profiler.Pushing() {
		t.Fatal("not pushing with PYROSCOPE_SERVER_ADDRESS set")
	}
	host, _ := obs.Resource().Set().Value(semconv.HostNameKey)
	// Burn in the background while the uploads are awaited, and wait for it
	// before the test ends: a burn that outlives the test (a loaded machine
	// stretches it) would put unlabelled profBurn samples into the next
	// test's profiles.
	burned := make(chan struct{})
	go func() { defer close(burned); profBurn(300 * time.Millisecond) }()
	defer func() { <-burned }()

	ups := recv.WaitFor(t, 30*time.Second, "CPU, allocation, in-use and goroutine profiles", func(ups []testbackend.PyroscopeUpload) bool {
		return profHasType(ups, "cpu") && profHasType(ups, "alloc_space") && profHasType(ups, "alloc_objects") &&
			profHasType(ups, "inuse_space") && profHasType(ups, "inuse_objects") && profHasType(ups, "goroutine")
	})
	wantTags := map[string]string{"service_version": "1.4.2", "deployment_environment": "staging", "host": host.AsString()}
	for _, u := range ups {
		if u.App != "checkout" {
			t.Errorf("upload named %q, want the service name checkout", u.App)
		}
		for k, v := range wantTags {
			if u.Tags[k] != v || v == "" {
				t.Errorf("upload tags %v: %s is not %q", u.Tags, k, v)
			}
		}
		if u.User != "pyro" {
			t.Errorf("upload authenticated as %q, want pyro", u.User)
		}
		if u.HasSampleType("contentions") {
			t.Error("a mutex or block profile was pushed without WithMutexProfiling/WithBlockProfiling")
		}
	}
	// The receiver records an upload before it answers; the profiler counts
	// it once the answer is back.
	testbackend.Eventually(5*time.Second, func() bool { return instance.Of(obs).Profiler.UploadedProfiles() > 0 })
	if instance.Of(obs).Profiler.UploadedProfiles() == 0 || instance.Of(obs).Profiler.DroppedProfiles() != 0 {
		t.Errorf("uploaded %d, dropped %d", instance.Of(obs).Profiler.UploadedProfiles(), instance.Of(obs).Profiler.DroppedProfiles())
	}
}

func TestProfilingWrongCredentialsAreCountedDrops(t *testing.T) {
	recv := testbackend.StartPyroscope(t, testbackend.WithPyroscopeBasicAuth("pyro", "pw"))
	obs := profInit(t, map[string]string{
		"PYROSCOPE_SERVER_ADDRESS":      recv.URL,
		"PYROSCOPE_BASIC_AUTH_USER":     "pyro",
		"PYROSCOPE_BASIC_AUTH_PASSWORD": "wrong",
	}, observe.WithProfileUploadInterval(time.Second))
	testbackend.Eventually(20*time.Second, func() bool { return instance.Of(obs).Profiler.DroppedProfiles() > 0 })
	if instance.Of(obs).Profiler.DroppedProfiles() == 0 || len(recv.Uploads()) != 0 {
		t.Errorf("401s: dropped %d, accepted %d", instance.Of(obs).Profiler.DroppedProfiles(), len(recv.Uploads()))
	}
}

// TestProfilingSpanLabelsOnCPUSamples: CPU samples taken while a traced
// request runs carry span_id, span_name and endpoint, with the labels the
// application set before the span; after the span, only the application's.
func TestProfilingSpanLabelsOnCPUSamples(t *testing.T) {
	recv := testbackend.StartPyroscope(t)
	obs := profInit(t, map[string]string{"PYROSCOPE_SERVER_ADDRESS": recv.URL}, observe.WithProfileUploadInterval(time.Second))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /burn/{id}", func(w http.ResponseWriter, r *http.Request) {
		profBurn(20 * time.Millisecond)
		_, _ = io.WriteString(w, "ok")
	})
	srv := httptest.NewServer(profAppLabels(middleware.HTTP(mux), 10*time.Millisecond))
	defer srv.Close()

	var wg sync.WaitGroup
	for c := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				resp, err := http.Get(fmt.Sprintf("%s/burn/%d", srv.URL, c*100+i))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()

	// The finished server spans, by span ID, before Shutdown clears anything.
	spans := map[string]string{}
	for _, s := range instance.Of(obs).Tracing.Store().Spans() {
		for _, kv := range s.Attributes() {
			if kv.Key == profiling.ProfileIDAttribute {
				if kv.Value.AsString() != s.SpanContext().SpanID().String() {
					t.Errorf("span %s: %s = %s", s.SpanContext().SpanID(), kv.Key, kv.Value.AsString())
				}
				spans[kv.Value.AsString()] = s.Name()
			}
		}
	}
	if len(spans) != 50 {
		t.Errorf("%d root spans carry %s, want 50", len(spans), profiling.ProfileIDAttribute)
	}
	profShutdown(t, obs, 10*time.Second) // flushes the last CPU profile

	hexID := regexp.MustCompile(`^[0-9a-f]{16}$`)
	var inSpan, afterSpan int
	for _, u := range profCPUUploads(recv.Uploads()) {
		for _, s := range u.Profile.Sample {
			switch {
			case profStackHas(s, ".profBurnAfterSpan"):
				afterSpan++
				if profLabel(s, "tenant") != "acme" || profLabel(s, "span_id") != "" || profLabel(s, profiling.LabelEndpoint) != "" {
					t.Errorf("sample after the span: labels %v, want tenant=acme only", s.Label)
				}
			case profStackHas(s, ".profBurn"):
				inSpan++
				id := profLabel(s, "span_id")
				if !hexID.MatchString(id) || spans[id] != "GET /burn/{id}" ||
					profLabel(s, profiling.LabelSpanName) != "GET /burn/{id}" ||
					profLabel(s, profiling.LabelEndpoint) != "/burn/{id}" ||
					profLabel(s, "tenant") != "acme" {
					t.Errorf("sample during a request: labels %v (span %q)", s.Label, spans[id])
				}
			}
		}
	}
	t.Logf("CPU samples: %d during requests, %d after their spans", inSpan, afterSpan)
	if inSpan < 10 || afterSpan < 3 {
		t.Errorf("too few samples to judge: %d during requests, %d after", inSpan, afterSpan)
	}
}

// TestProfilingServerDownCostsNothing: with the Pyroscope server a blackhole
// (accepting and never answering) half of the time, request latency is the
// same as when it answers, and the lost profiles are counted, on /metrics too.
func TestProfilingServerDownCostsNothing(t *testing.T) {
	recv := testbackend.StartPyroscope(t)
	t.Setenv("OBSERVE_ADMIN_TOKEN", "")
	obs := profInit(t, map[string]string{"PYROSCOPE_SERVER_ADDRESS": recv.URL}, observe.WithProfileUploadInterval(500*time.Millisecond))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /item/{id}", func(w http.ResponseWriter, r *http.Request) {
		profBurn(200 * time.Microsecond)
		_, _ = io.WriteString(w, "ok")
	})
	srv := httptest.NewServer(middleware.HTTP(mux))
	defer srv.Close()
	client := srv.Client()

	lat := map[testbackend.PyroscopeMode][]time.Duration{}
	for phase := range 8 {
		mode := testbackend.PyroscopeUp
		if phase%2 == 1 {
			mode = testbackend.PyroscopeHang
		}
		recv.SetMode(mode)
		for end := time.Now().Add(700 * time.Millisecond); time.Now().Before(end); {
			start := time.Now()
			resp, err := client.Get(srv.URL + "/item/7")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat[mode] = append(lat[mode], time.Since(start))
		}
	}
	recv.SetMode(testbackend.PyroscopeUp) // frees the held uploads: they fail
	testbackend.Eventually(10*time.Second, func() bool { return instance.Of(obs).Profiler.DroppedProfiles() > 0 })

	up, down := profQuantiles(lat[testbackend.PyroscopeUp]), profQuantiles(lat[testbackend.PyroscopeHang])
	t.Logf("latency with the server up:   p50 %v p90 %v (%d requests)", up[0], up[1], len(lat[testbackend.PyroscopeUp]))
	t.Logf("latency with the server down: p50 %v p90 %v (%d requests)", down[0], down[1], len(lat[testbackend.PyroscopeHang]))
	t.Logf("profiles uploaded %d, dropped %d", instance.Of(obs).Profiler.UploadedProfiles(), instance.Of(obs).Profiler.DroppedProfiles())
	// Within noise: 2 shared cores, so generous bounds on the median and p90.
	for i, q := range []string{"p50", "p90"} {
		if down[i] > up[i]*3/2+200*time.Microsecond {
			t.Errorf("%s latency %v with the server down, %v with it up", q, down[i], up[i])
		}
	}
	if instance.Of(obs).Profiler.DroppedProfiles() == 0 {
		t.Error("no profile counted as dropped while the server was down")
	}

	// The count reaches /metrics as observe_profiles_dropped_total.
	rec := httptest.NewRecorder()
	obs.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	m := regexp.MustCompile(`(?m)^observe_profiles_dropped_total(\{[^}]*\})? ([0-9.e+]+)$`).FindStringSubmatch(rec.Body.String())
	if m == nil || m[2] == "0" {
		t.Errorf("observe_profiles_dropped_total missing or zero on /metrics: %v", m)
	}

	// Shutdown with the server hanging again still returns by its deadline.
	recv.SetMode(testbackend.PyroscopeHang)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	profShutDown.Store(obs, true)
	err := obs.Shutdown(ctx)
	if d := time.Since(start); d > 1500*time.Millisecond || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a 1s deadline and the server hanging: %v after %s", err, d)
	}
	recv.SetMode(testbackend.PyroscopeUp)
}

func profQuantiles(d []time.Duration) [2]time.Duration {
	if len(d) == 0 {
		return [2]time.Duration{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return [2]time.Duration{s[len(s)/2], s[len(s)*9/10]}
}

func TestProfilingServerRefusedIsNoError(t *testing.T) {
	addr := fmt.Sprintf("http://127.0.0.1:%d", testbackend.FreePort(t)) // nothing listens
	start := time.Now()
	obs := profInit(t, map[string]string{"PYROSCOPE_SERVER_ADDRESS": addr}, observe.WithProfileUploadInterval(time.Second))
	t.Logf("Init took %s", time.Since(start))
	testbackend.Eventually(20*time.Second, func() bool { return instance.Of(obs).Profiler.DroppedProfiles() >= 2 })
	if instance.Of(obs).Profiler.DroppedProfiles() < 2 || instance.Of(obs).Profiler.ExportFailures() < 2 {
		t.Errorf("dropped %d, failures %d with the server refusing", instance.Of(obs).Profiler.DroppedProfiles(), instance.Of(obs).Profiler.ExportFailures())
	}
	start = time.Now()
	profShutdown(t, obs, 5*time.Second)
	if d := time.Since(start); d > time.Second {
		t.Errorf("Shutdown took %s with the server refusing", d)
	}
}

func TestProfilingShutdownFlushesTheLastProfile(t *testing.T) {
	recv := testbackend.StartPyroscope(t)
	obs := profInit(t, map[string]string{"PYROSCOPE_SERVER_ADDRESS": recv.URL}) // default interval: 15s
	profBurn(200 * time.Millisecond)
	if n := len(recv.Uploads()); n != 0 {
		t.Fatalf("%d uploads before the first period ended", n)
	}
	start := time.Now()
	profShutdown(t, obs, 5*time.Second)
	t.Logf("Shutdown took %s", time.Since(start))
	ups := recv.Uploads()
	var cpuSamples int
	for _, u := range profCPUUploads(ups) {
		cpuSamples += len(u.Profile.Sample)
	}
	if cpuSamples == 0 || !profHasType(ups, "inuse_space") || !profHasType(ups, "goroutine") {
		t.Errorf("after Shutdown: %d CPU samples, heap %v, goroutines %v", cpuSamples, profHasType(ups, "inuse_space"), profHasType(ups, "goroutine"))
	}
}

func TestProfilingMutexAndBlockOptions(t *testing.T) {
	prev := runtime.SetMutexProfileFraction(0)
	defer runtime.SetMutexProfileFraction(prev)
	recv := testbackend.StartPyroscope(t)
	obs := profInit(t, map[string]string{"PYROSCOPE_SERVER_ADDRESS": recv.URL},
		observe.WithProfileUploadInterval(time.Second), observe.WithMutexProfiling(), observe.WithBlockProfiling())
	if got := runtime.SetMutexProfileFraction(-1); got != profiling.DefaultMutexProfileFraction {
		t.Errorf("mutex profile fraction %d, want %d", got, profiling.DefaultMutexProfileFraction)
	}
	// Some contention to see.
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				mu.Lock()
				time.Sleep(time.Microsecond)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	display := func(ups []testbackend.PyroscopeUpload, name string) bool {
		for _, u := range ups {
			if u.SampleTypeConfig["contentions"].DisplayName == name {
				return true
			}
		}
		return false
	}
	recv.WaitFor(t, 30*time.Second, "mutex and block profiles", func(ups []testbackend.PyroscopeUpload) bool {
		return display(ups, "mutex_count") && display(ups, "block_count")
	})
	profShutdown(t, obs, 5*time.Second)
	if got := runtime.SetMutexProfileFraction(-1); got != 0 {
		t.Errorf("mutex profile fraction %d after Shutdown, want 0", got)
	}
}

func TestProfilingWithoutServerPushesNothingAndLinksNothing(t *testing.T) {
	obs := profInit(t, nil)
	if instance.Of(obs).Profiler.Pushing() {
		t.Fatal("pushing without PYROSCOPE_SERVER_ADDRESS")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {})
	middleware.HTTP(mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	_, span := obs.Tracer("t").Start(context.Background(), "job")
	span.End()
	for _, s := range instance.Of(obs).Tracing.Store().Spans() {
		if slices.ContainsFunc(s.Attributes(), func(kv attribute.KeyValue) bool { return kv.Key == profiling.ProfileIDAttribute }) {
			t.Errorf("span %q links to a profile that is not pushed", s.Name())
		}
	}
	if n := len(instance.Of(obs).Tracing.Store().Spans()); n != 2 {
		t.Errorf("%d spans recorded, want 2", n)
	}
}

func TestProfilingLinksForcedOn(t *testing.T) {
	obs := profInit(t, nil, observe.WithProfileLinks(true))
	_, span := obs.Tracer("t").Start(context.Background(), "job")
	span.End()
	spans := instance.Of(obs).Tracing.Store().Spans()
	if len(spans) != 1 || !strings.Contains(fmt.Sprint(spans[0].Attributes()), string(profiling.ProfileIDAttribute)) {
		t.Errorf("WithProfileLinks(true): spans %v", spans)
	}
}

// TestProfilingShutdownLeavesNothingRunning: pushing, links, the admin CPU
// endpoint and an outage, then Shutdown: no goroutine is left behind.
func TestProfilingShutdownLeavesNothingRunning(t *testing.T) {
	recv := testbackend.StartPyroscope(t)
	ignore := goleak.IgnoreCurrent()
	obs := profInit(t, map[string]string{
		"PYROSCOPE_SERVER_ADDRESS": recv.URL,
		"OBSERVE_ADMIN_ADDR":       "127.0.0.1:0",
		"OBSERVE_ADMIN_TOKEN":      profToken,
	}, observe.WithProfileUploadInterval(300*time.Millisecond), observe.WithMutexProfiling(), observe.WithBlockProfiling())
	stop := profTraffic(t)
	recv.WaitFor(t, 30*time.Second, "a CPU profile", func(ups []testbackend.PyroscopeUpload) bool { return len(profCPUUploads(ups)) > 0 })
	recv.SetMode(testbackend.PyroscopeHang)
	time.Sleep(500 * time.Millisecond) // uploads now hang
	stop()
	profShutDown.Store(obs, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = obs.Shutdown(ctx) // may hit its deadline: the server hangs
	recv.SetMode(testbackend.PyroscopeUp)
	http.DefaultClient.CloseIdleConnections()
	goleak.VerifyNone(t, ignore)
}

// TestProfilingProfileIDSurvivesRedaction: a span ID can be 16 decimal
// digits passing Luhn, which the redaction policy takes for a card number;
// pyroscope.profile.id must reach the backend intact all the same.
func TestProfilingProfileIDSurvivesRedaction(t *testing.T) {
	obs := profInit(t, nil, observe.WithProfileLinks(true))
	const id = "6563163828523565"
	span := tracetest.SpanStub{Name: "GET /x", Attributes: []attribute.KeyValue{
		profiling.ProfileIDAttribute.String(id),
		attribute.String("note", id),
	}}.Snapshot()
	attrs := tracing.RedactSpan(instance.Of(obs).Tracing.Redactor(), span).Attributes()
	if attrs[1].Value.AsString() == id {
		t.Log("the redaction policy no longer takes this ID for a secret: this test proves little")
	}
	if got := attrs[0].Value.AsString(); got != id {
		t.Errorf("%s redacted to %q", profiling.ProfileIDAttribute, got)
	}
}

// TestProfilingLinksUnderTailSampling: a tail sampler records every request
// unsampled and keeps some at the end; the kept ones (here: the errors) need
// their profile links most.
func TestProfilingLinksUnderTailSampling(t *testing.T) {
	recv := testbackend.StartPyroscope(t)
	obs := profInit(t, map[string]string{
		"PYROSCOPE_SERVER_ADDRESS": recv.URL,
		"OTEL_TRACES_SAMPLER":      "observe_tail",
		"OTEL_TRACES_SAMPLER_ARG":  "0",
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fail/{id}", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	middleware.HTTP(mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/fail/1", nil))
	spans := instance.Of(obs).Tracing.Store().Spans()
	if len(spans) != 1 {
		t.Fatalf("%d spans kept, want the failed request's", len(spans))
	}
	id := spans[0].SpanContext().SpanID().String()
	if !slices.Contains(spans[0].Attributes(), profiling.ProfileIDAttribute.String(id)) {
		t.Errorf("kept span %q has no %s=%s: %v", spans[0].Name(), profiling.ProfileIDAttribute, id, spans[0].Attributes())
	}
}
