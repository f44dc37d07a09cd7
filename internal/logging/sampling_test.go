package logging

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestParseSampleRates(t *testing.T) {
	ok := map[string]SampleRates{
		"":                        {},
		"off":                     {},
		" NONE ":                  {},
		"debug=0.1":               {Debug: 0.1},
		"debug=0.1,info=0.5":      {Debug: 0.1, Info: 0.5},
		" Info = 1 , debug=.25 ,": {Debug: 0.25, Info: 1},
		"info=1e-3":               {Info: 0.001},
	}
	for in, want := range ok {
		got, err := ParseSampleRates(in)
		if err != nil || got != want {
			t.Errorf("ParseSampleRates(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	bad := []string{
		"debug", "debug=", "debug=0", "debug=-0.1", "debug=1.5", "debug=NaN", "debug=Inf", "debug=0x1p-2",
		"warn=0.5", "error=0.1", "trace=0.5", "debug=0.1,debug=0.2", "=0.5", "debug=0.1;info=0.2",
		"debug=1_0",
	}
	for _, in := range bad {
		if r, err := ParseSampleRates(in); err == nil {
			t.Errorf("ParseSampleRates(%q) accepted: %+v", in, r)
		}
	}
	if r, _ := ParseSampleRates("debug=0.1,info=0.5"); r.String() != "debug=0.1,info=0.5" {
		t.Errorf("String() = %q", r.String())
	}
}

func TestSamplingOffByDefault(t *testing.T) {
	log, h, lb := newTest(Options{Levels: NewLevelController(slog.LevelDebug)})
	for i := 0; i < 100; i++ {
		log.Debug("d")
	}
	if len(lb.lines()) != 100 || h.Dropped() != 0 {
		t.Fatalf("%d lines, %d dropped", len(lb.lines()), h.Dropped())
	}
	if rec := lb.records(t)[0]; rec["sample_rate"] != nil {
		t.Errorf("sample_rate without sampling: %v", rec)
	}
}

func TestSamplingRatesAndCounts(t *testing.T) {
	log, h, lb := newTest(Options{
		Levels:   NewLevelController(slog.LevelDebug),
		Sampling: SampleRates{Debug: 0.1, Info: 0.5},
	})
	const n = 20000
	for i := 0; i < n; i++ {
		log.Debug("d")
		log.Info("i")
		log.Warn("w")
		log.Error("e")
	}
	count := map[string]int{}
	for _, r := range lb.records(t) {
		lvl := r["level"].(string)
		count[lvl]++
		rate, has := r["sample_rate"]
		switch lvl {
		case "DEBUG":
			if fmt.Sprint(rate) != "0.1" {
				t.Fatalf("DEBUG line without sample_rate 0.1: %v", r)
			}
		case "INFO":
			if fmt.Sprint(rate) != "0.5" {
				t.Fatalf("INFO line without sample_rate 0.5: %v", r)
			}
		default:
			if has {
				t.Fatalf("%s line carries sample_rate: %v", lvl, r)
			}
		}
	}
	if count["WARN"] != n || count["ERROR"] != n {
		t.Errorf("WARN/ERROR sampled: %v", count)
	}
	within := func(got int, rate float64) bool {
		want := rate * n
		sd := math.Sqrt(n * rate * (1 - rate))
		return math.Abs(float64(got)-want) < 6*sd
	}
	if !within(count["DEBUG"], 0.1) || !within(count["INFO"], 0.5) {
		t.Errorf("kept %v of %d each; want about 10%% DEBUG, 50%% INFO", count, n)
	}
	if want := uint64(2*n - count["DEBUG"] - count["INFO"]); h.Dropped() != want || h.DroppedRecords() != want {
		t.Errorf("Dropped() = %d, want %d", h.Dropped(), want)
	}
}

func TestSamplingKeepsSampledTracesWhole(t *testing.T) {
	log, h, lb := newTest(Options{Levels: NewLevelController(slog.LevelDebug), Sampling: SampleRates{Debug: 0.01, Info: 0.01}})
	ctx := spanContext(true)
	for i := 0; i < 200; i++ {
		log.DebugContext(ctx, "d")
		log.InfoContext(ctx, "i")
	}
	if len(lb.lines()) != 400 || h.Dropped() != 0 {
		t.Fatalf("sampled trace lost lines: %d kept, %d dropped", len(lb.lines()), h.Dropped())
	}
	if lb.records(t)[0]["sample_rate"] != nil {
		t.Error("a line kept because its trace is sampled claims a sample_rate")
	}
}

func TestSamplingUnsampledTracesAllOrNothing(t *testing.T) {
	log, h, lb := newTest(Options{Levels: NewLevelController(slog.LevelDebug), Sampling: SampleRates{Debug: 0.2, Info: 0.5}})
	const traces = 2000
	keptDebug, keptInfo := 0, 0
	for i := 0; i < traces; i++ {
		var tid trace.TraceID
		binary.BigEndian.PutUint64(tid[:8], uint64(i)*0x9e3779b97f4a7c15)
		binary.BigEndian.PutUint64(tid[8:], uint64(i+1))
		ctx := spanContextWith(tid, false)
		lb.Reset()
		for j := 0; j < 5; j++ {
			log.DebugContext(ctx, "d")
			log.InfoContext(ctx, "i")
		}
		d, in := 0, 0
		for _, r := range lb.records(t) {
			if r["level"] == "DEBUG" {
				d++
			} else {
				in++
			}
		}
		if (d != 0 && d != 5) || (in != 0 && in != 5) {
			t.Fatalf("trace %d split: %d/5 DEBUG, %d/5 INFO kept", i, d, in)
		}
		if d == 5 && in == 0 {
			t.Fatalf("trace %d kept at DEBUG (0.2) but not at INFO (0.5)", i)
		}
		keptDebug += d / 5
		keptInfo += in / 5
	}
	if math.Abs(float64(keptDebug)-0.2*traces) > 0.05*traces || math.Abs(float64(keptInfo)-0.5*traces) > 0.06*traces {
		t.Errorf("kept %d DEBUG, %d INFO traces of %d", keptDebug, keptInfo, traces)
	}
	if h.Dropped() == 0 {
		t.Error("nothing counted as dropped")
	}
}

// The decision is taken in Enabled: a dropped line's arguments are never
// resolved, so the record is never built.
func TestSamplingDecidesBeforeRecordIsBuilt(t *testing.T) {
	log, h, _ := newTest(Options{Levels: NewLevelController(slog.LevelDebug), Sampling: SampleRates{Debug: 0.05}})
	resolved := 0
	v := valuer(func() slog.Value { resolved++; return slog.IntValue(1) })
	for i := 0; i < 1000; i++ {
		log.Debug("d", "v", v)
	}
	kept := 1000 - int(h.Dropped())
	if resolved != kept {
		t.Fatalf("LogValue called %d times for %d kept lines", resolved, kept)
	}
	// Below the level nothing is counted: those lines were never wanted.
	log2, h2, _ := newTest(Options{Sampling: SampleRates{Debug: 0.5}})
	for i := 0; i < 100; i++ {
		log2.Debug("below level")
	}
	if h2.Dropped() != 0 {
		t.Errorf("lines below the level counted as dropped: %d", h2.Dropped())
	}
}

func TestSampleRateAtTopLevelWithGroups(t *testing.T) {
	log, _, lb := newTest(Options{Levels: NewLevelController(slog.LevelDebug), Sampling: SampleRates{Debug: 0.999999}})
	for i := 0; i < 10 && len(lb.lines()) == 0; i++ {
		log.WithGroup("req").Debug("m", "a", 1)
	}
	line := lb.lines()[0]
	if got := keysInOrder(t, line); got[len(got)-2] != "sample_rate" || got[len(got)-1] != "req" {
		t.Fatalf("sample_rate not at the top level: %s", line)
	}
}

func TestSamplingNamedAndRootShareCounter(t *testing.T) {
	log, h, _ := newTest(Options{Levels: NewLevelController(slog.LevelDebug), Sampling: SampleRates{Debug: 0.5}})
	named := slog.New(h.WithName("db"))
	for i := 0; i < 200; i++ {
		log.Debug("a")
		named.Debug("b")
	}
	if d := h.Dropped(); d < 100 || d > 300 {
		t.Errorf("dropped %d of 400", d)
	}
	if h.WithName("x").Dropped() != h.Dropped() {
		t.Error("derived handler counts separately")
	}
}
