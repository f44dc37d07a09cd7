package tracing_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/observekit/observe"
	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/internal/testbackend"
	"github.com/observekit/observe/internal/tracing"
	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// tailEnv sets what Init reads for tail sampling and clears what would get
// in the way.
func tailEnv(t *testing.T, vars map[string]string) {
	for _, v := range []string{
		"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
		"OBSERVE_TAIL_LATENCY", "OBSERVE_TAIL_ERRORS", "OBSERVE_TAIL_MAX_SPANS", "OBSERVE_TAIL_MAX_TRACES",
		"OBSERVE_LOG_SAMPLING", "PYROSCOPE_SERVER_ADDRESS",
	} {
		t.Setenv(v, "")
	}
	t.Setenv("OBSERVE_ADMIN_ADDR", "off")
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

type tailLogs struct{ testbackend.LockedBuffer }

// traceIDs returns the trace_id of every line with msg.
func (l *tailLogs) traceIDs(t *testing.T, msg string) map[string]int {
	out := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(l.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if m["msg"] == msg {
			id, _ := m["trace_id"].(string)
			out[id]++
		}
	}
	return out
}

// TestTailThroughHTTPMiddleware: 10,000 requests through middleware.HTTP,
// with tail sampling configured by the environment, 1% failing (500) and 1%
// slow. Every failing and every slow trace is exported whole (server span
// and the handler's own span); exemplars point only at kept traces,
// including ones kept for being slow; the handler's log line of every kept
// trace is found by its trace_id.
func TestTailThroughHTTPMiddleware(t *testing.T) {
	const n, baseline = 10000, 0.05
	tailEnv(t, map[string]string{
		"OTEL_TRACES_SAMPLER":     "observe_tail",
		"OTEL_TRACES_SAMPLER_ARG": strconv.FormatFloat(baseline, 'g', -1, 64),
		"OBSERVE_TAIL_LATENCY":    "p99,150ms",
	})
	rec := &tailRecorder{}
	logs := &tailLogs{}
	obs, err := observe.Init(context.Background(), observe.WithServiceName("tail"), observe.WithLogWriter(logs),
		observe.WithAccessLog(false), observe.WithSpanExporter(rec))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = obs.Shutdown(ctx)
	})
	tail := instance.Of(obs).Tracing.Tail()
	if tail == nil {
		t.Fatal("OTEL_TRACES_SAMPLER=observe_tail did not turn tail sampling on")
	}
	if c := tail.Config(); c.Baseline != baseline || c.Latency != 150*time.Millisecond || c.LatencyQuantile != 0.99 {
		t.Fatalf("config from the environment: %+v", c)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /work/{id}", func(w http.ResponseWriter, r *http.Request) {
		ctx, span := otel.Tracer("app").Start(r.Context(), "work")
		slog.InfoContext(ctx, "working", "id", r.PathValue("id"))
		i, _ := strconv.Atoi(r.PathValue("id"))
		switch i % 100 {
		case 7:
			span.End()
			w.WriteHeader(http.StatusInternalServerError)
			return
		case 42:
			time.Sleep(180 * time.Millisecond) // well past 150ms: a normal request stalled by a loaded machine stays under it
		}
		span.End()
		_, _ = io.WriteString(w, "ok")
	})
	h := middleware.HTTP(mux)

	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/work/"+strconv.Itoa(i), nil))
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	flush(t, instance.Of(obs).Tracing)

	// Which trace is which request: from the exported server spans' and
	// the log lines' attributes.
	idOfLine := logs.traceIDs(t, "working")
	if len(idOfLine) != n {
		t.Fatalf("%d distinct trace ids in %d log lines, want %d", len(idOfLine), n, n)
	}
	exported := rec.byTrace()
	requestOf := map[trace.TraceID]int{}
	for id, spans := range exported {
		for _, s := range spans {
			if s.SpanKind() == trace.SpanKindServer {
				for _, a := range s.Attributes() {
					if a.Key == "url.path" {
						i, _ := strconv.Atoi(strings.TrimPrefix(a.Value.AsString(), "/work/"))
						requestOf[id] = i
					}
				}
			}
		}
	}
	keptFailing, keptSlow, keptNormal, keptBaseline := 0, 0, 0, 0
	for id, spans := range exported {
		checkWhole(t, id, spans, 2)
		i, ok := requestOf[id]
		if !ok {
			t.Errorf("trace %s exported without its server span", id)
			continue
		}
		switch i % 100 {
		case 7:
			keptFailing++
		case 42:
			keptSlow++
		default:
			keptNormal++
			if tail.InBaseline(id) {
				keptBaseline++
			}
		}
		if idOfLine[id.String()] != 1 {
			t.Errorf("kept trace %s: %d log lines carry its trace_id, want 1", id, idOfLine[id.String()])
		}
	}
	if keptFailing != 100 || keptSlow != 100 {
		t.Errorf("kept %d of 100 failing and %d of 100 slow traces", keptFailing, keptSlow)
	}
	// Every baseline trace is kept (checked by id), and their number is
	// within bounds; the route's p99 keeps about 1% more of the normal ones.
	baselineTotal := 0
	for id := range idOfLine {
		tid, err := trace.TraceIDFromHex(id)
		if err != nil {
			t.Fatal(err)
		}
		if tail.InBaseline(tid) {
			baselineTotal++
			if len(exported[tid]) == 0 {
				t.Errorf("baseline trace %s not exported", tid)
			}
		}
	}
	if mean, sd := float64(n)*baseline, 5*math.Sqrt(float64(n)*baseline*(1-baseline)); float64(baselineTotal) < mean-sd || float64(baselineTotal) > mean+sd {
		t.Errorf("%d baseline traces of %d, want %.0f ± %.0f", baselineTotal, n, mean, sd)
	}
	if extra := keptNormal - keptBaseline; extra > n/40 {
		t.Errorf("%d normal traces kept beyond the baseline, want about 1%% (route p99)", extra)
	}

	// Exemplars: only kept traces, and ones kept by tail sampling among
	// them. (Not necessarily slow ones: under the race detector a normal
	// request can land in the slow requests' bucket first, and the gate
	// admits one exemplar per bucket per interval.)
	mfs, err := instance.Of(obs).Metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exemplars, tailExemplars := 0, 0
	for _, mf := range mfs {
		if mf.GetName() != "http_server_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, b := range m.GetHistogram().GetBucket() {
				ex := b.GetExemplar()
				if ex == nil {
					continue
				}
				for _, l := range ex.GetLabel() {
					if l.GetName() != "trace_id" {
						continue
					}
					exemplars++
					tid, _ := trace.TraceIDFromHex(l.GetValue())
					if len(exported[tid]) == 0 {
						t.Errorf("exemplar points at trace %s, which was not kept", tid)
					}
					if !tail.InBaseline(tid) {
						// Kept after the fact (failing, slow, over the
						// route's p99): only the hook makes it an exemplar.
						tailExemplars++
					}
				}
			}
		}
	}
	if exemplars == 0 || tailExemplars == 0 {
		t.Errorf("%d exemplars, %d of them for traces kept by tail sampling: the exemplar hook is not in place", exemplars, tailExemplars)
	}
	st := tail.Stats()
	t.Logf("exported %d traces: %d failing, %d slow, %d normal (%d baseline of %d); %d exemplars; tail %+v",
		len(exported), keptFailing, keptSlow, keptNormal, keptBaseline, baselineTotal, exemplars, st)
}

// TestTailConfigErrors: malformed tail sampling settings are Init errors
// naming the variable.
func TestTailConfigErrors(t *testing.T) {
	for _, c := range []struct{ name, value string }{
		{"OTEL_TRACES_SAMPLER_ARG", "1.5"},
		{"OTEL_TRACES_SAMPLER_ARG", "lots"},
		{"OBSERVE_TAIL_LATENCY", "slow"},
		{"OBSERVE_TAIL_LATENCY", "p100"},
		{"OBSERVE_TAIL_LATENCY", "p99,p95"},
		{"OBSERVE_TAIL_LATENCY", "-1s"},
		{"OBSERVE_TAIL_ERRORS", "some"},
		{"OBSERVE_TAIL_MAX_SPANS", "0"},
		{"OBSERVE_TAIL_MAX_TRACES", "many"},
	} {
		t.Run(c.name+"="+c.value, func(t *testing.T) {
			tailEnv(t, map[string]string{"OTEL_TRACES_SAMPLER": "observe_tail", c.name: c.value})
			obs, err := observe.Init(context.Background(), observe.WithLogWriter(io.Discard))
			if err == nil {
				_ = obs.Shutdown(context.Background())
				t.Fatalf("Init accepted %s=%q", c.name, c.value)
			}
			var ce *observe.ConfigError
			if !errors.As(err, &ce) || ce.Variable != c.name || !strings.Contains(err.Error(), "accepted") {
				t.Fatalf("error does not name %s with what is accepted: %v", c.name, err)
			}
		})
	}
	t.Run("unknown sampler lists observe_tail", func(t *testing.T) {
		tailEnv(t, map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"})
		_, err := observe.Init(context.Background(), observe.WithLogWriter(io.Discard))
		if err == nil || !strings.Contains(err.Error(), "observe_tail") {
			t.Fatalf("error does not list observe_tail: %v", err)
		}
	})
}

// TestTailConfigByOptionAndDefaults: the option wins over the environment,
// and the environment's defaults are the documented ones.
func TestTailConfigByOptionAndDefaults(t *testing.T) {
	tailEnv(t, map[string]string{"OTEL_TRACES_SAMPLER": "observe_tail"})
	obs, err := observe.Init(context.Background(), observe.WithLogWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	got := instance.Of(obs).Tracing.Tail().Config()
	want := tracing.TailConfig{Baseline: 0.01, LatencyQuantile: 0.99, MaxSpans: 8192, MaxTraces: 2048}
	if got != want {
		t.Errorf("defaults: %+v, want %+v", got, want)
	}
	_ = obs.Shutdown(context.Background())

	tailEnv(t, map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_on", "OBSERVE_TAIL_ERRORS": "any"})
	obs, err = observe.Init(context.Background(), observe.WithLogWriter(io.Discard),
		observe.WithTailSampling(tracing.TailConfig{Baseline: 0.2, Latency: time.Second, AnyError: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = obs.Shutdown(context.Background()) }()
	got = instance.Of(obs).Tracing.Tail().Config()
	if got.Baseline != 0.2 || got.Latency != time.Second || !got.AnyError || got.LatencyQuantile != 0 {
		t.Errorf("by option: %+v", got)
	}

	// Without tail sampling: no TailSampler, Kept is IsSampled.
	tailEnv(t, nil)
	plain, err := observe.Init(context.Background(), observe.WithLogWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if instance.Of(plain).Tracing.Tail() != nil {
		t.Error("tail sampling on by default")
	}
	_ = plain.Shutdown(context.Background())
}
