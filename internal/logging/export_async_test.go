package logging

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/observekit/observe/internal/otlpexport"
	"github.com/observekit/observe/redact"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.uber.org/goleak"
)

// mutable is a LogValuer whose value changes after the call that logged it.
type mutable struct{ n *int }

func (m mutable) LogValue() slog.Value { return slog.IntValue(*m.n) }

// exported is what a test compares of an exported record.
type exported struct {
	Body, Severity, TraceID, SpanID string
	Attrs                           map[string]string
}

func summarize(rs []sdklog.Record) []exported {
	var out []exported
	for _, r := range rs {
		out = append(out, exported{
			Body:     r.Body().AsString(),
			Severity: r.SeverityText(),
			TraceID:  r.TraceID().String(),
			SpanID:   r.SpanID().String(),
			Attrs:    attrs(r),
		})
	}
	return out
}

// With observe's Provider the export stage hands records to the worker and
// the worker converts them (see batchProcessor.enqueue); with any other
// provider the bridge converts them in line. Both must export the same
// records, with the values they had when logged.
func TestExportHandedOverMatchesInline(t *testing.T) {
	for _, tc := range []struct {
		name     string
		redactor Redactor
	}{
		{"redaction", redact.Default()},
		{"no-redaction", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stackErr := newStackErr("boom")
			logAll := func(log *slog.Logger) {
				ctx := spanContext(true)
				n := 1
				m := map[string]int{"a": 1}
				group := []slog.Attr{slog.String("k", "v"), slog.Int("i", 2)}
				log.InfoContext(ctx, "plain", "s", "text", "i", 7, "f", 1.5, "b", true, "d", time.Second,
					"email", "ann@example.com", "password", "pw")
				log.With("w", 1).WithGroup("g").InfoContext(ctx, "grouped", slog.Attr{Key: "grp", Value: slog.GroupValue(group...)}, "x", "y")
				log.InfoContext(ctx, "valuer", "n", mutable{&n}, "m", m, "err", stackErr)
				// Changed after logging: the export holds the values of then.
				n = 2
				m["a"] = 99
				group[0] = slog.String("k", "changed")
				log.InfoContext(context.Background(), "no span", "many1", 1, "many2", 2, "many3", 3, "many4", 4, "many5", 5, "many6", 6)
			}

			inline, _, _, inlineExp := newExportTest(Options{Redactor: tc.redactor})
			logAll(inline)

			exp := &memExporter{}
			prov, err := NewLoggerProvider(context.Background(), OTLPConfig{Exporter: exp, ExportInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			handed, h, _ := newTest(Options{Redactor: tc.redactor, LoggerProvider: prov})
			if h.p.export.(*exportStage).async == nil {
				t.Fatal("observe's Provider: records not handed over")
			}
			logAll(handed)
			if err := prov.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			want, got := summarize(inlineExp.all()), summarize(exp.all())
			if len(got) != 4 || !reflect.DeepEqual(got, want) {
				t.Fatalf("handed over:\n%+v\nin line:\n%+v", got, want)
			}
			if got[2].Attrs["n"] != "1" || got[2].Attrs["m"] != `{"a":1}` {
				t.Errorf("values changed after logging reached the export: %v", got[2].Attrs)
			}
			if got[1].Attrs["g.grp.k"] != "v" {
				t.Errorf("a group changed after logging reached the export: %v", got[1].Attrs)
			}
			if tc.redactor != nil && (got[0].Attrs["password"] != "[REDACTED]" || got[0].Attrs["email"] == "ann@example.com") {
				t.Errorf("not redacted: %v", got[0].Attrs)
			}
		})
	}
}

// After Shutdown the export takes no more records; the lines still have
// them, and nothing is counted as dropped that was never wanted.
func TestExportAfterShutdown(t *testing.T) {
	exp := &memExporter{}
	prov, err := NewLoggerProvider(context.Background(), OTLPConfig{Exporter: exp, ExportInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	log, h, lb := newTest(Options{LoggerProvider: prov})
	log.Info("before")
	if err := prov.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	log.Info("after")
	if n := len(exp.all()); n != 1 {
		t.Errorf("%d exported, want 1", n)
	}
	if n := len(lb.records(t)); n != 2 {
		t.Errorf("%d lines, want 2", n)
	}
	if h.Dropped() != 0 {
		t.Errorf("dropped %d, want 0", h.Dropped())
	}
}

// Records handed over while Shutdown runs are dropped and counted.
func TestExportHandedOverDuringShutdownCounted(t *testing.T) {
	exp := &memExporter{}
	prov, err := NewLoggerProvider(context.Background(), OTLPConfig{Exporter: exp, ExportInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	prov.batch.closing.Store(true) // as Shutdown does first
	prov.batch.enqueue(pendingRecord{r: slog.NewRecord(time.Now(), slog.LevelInfo, "late", 0)})
	if prov.Dropped() != 1 {
		t.Errorf("dropped %d, want 1", prov.Dropped())
	}
	_ = prov.Shutdown(context.Background())
}

// The SDK provider skips its processors' Shutdown when the context has
// already ended; the worker must stop all the same.
func TestShutdownWithEndedContextStopsTheWorker(t *testing.T) {
	before := goleak.IgnoreCurrent()
	exp := &blockingExporter{}
	prov, err := NewLoggerProvider(context.Background(), OTLPConfig{Exporter: exp, ExportInterval: time.Millisecond, Export: otlpexport.Config{Timeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	log, h, _ := newTest(Options{LoggerProvider: prov})
	for i := range 3000 {
		log.Info("m", "i", i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := prov.Shutdown(ctx); err == nil {
		t.Error("Shutdown with an ended context reported success")
	}
	goleak.VerifyNone(t, before)
	if h.Dropped() != 3000 {
		t.Errorf("dropped %d of 3000 (none exported), want all counted", h.Dropped())
	}
}

// Records handed over while Shutdown runs are exported or counted as
// dropped, none lost.
func TestHandOverRacingShutdownIsAccountedFor(t *testing.T) {
	for range 30 {
		exp := &memExporter{}
		prov, err := NewLoggerProvider(context.Background(), OTLPConfig{Exporter: exp, ExportInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		newTest(Options{LoggerProvider: prov}) // sets convert's logger for WARN lines
		var handed atomic.Int64
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for !prov.batch.closing.Load() {
					handed.Add(1)
					prov.batch.enqueue(pendingRecord{r: slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0)})
				}
			})
		}
		time.Sleep(time.Millisecond)
		_ = prov.Shutdown(context.Background())
		wg.Wait()
		if got := int64(len(exp.all())) + int64(prov.Dropped()); got != handed.Load() {
			t.Fatalf("%d handed over, %d exported + %d dropped", handed.Load(), len(exp.all()), prov.Dropped())
		}
	}
}

// A record converted late (the worker waits for its batch) is still stamped
// observed when it was logged.
func TestHandedOverRecordObservedWhenLogged(t *testing.T) {
	exp := &memExporter{}
	prov, err := NewLoggerProvider(context.Background(), OTLPConfig{Exporter: exp, ExportInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	log, _, _ := newTest(Options{LoggerProvider: prov})
	before := time.Now()
	log.Info("m")
	after := time.Now()
	time.Sleep(200 * time.Millisecond)
	if err := prov.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := exp.all()
	if len(recs) != 1 {
		t.Fatalf("%d exported", len(recs))
	}
	if o := recs[0].ObservedTimestamp(); o.Before(before) || o.After(after) {
		t.Errorf("observed %v, logged between %v and %v", o, before, after)
	}
}

// panicky is a slog.Handler whose Handle panics with v.
type panicky struct {
	slog.Handler
	v any
}

func (p panicky) Handle(context.Context, slog.Record) error { panic(p.v) }

// counting is a slog.Handler that counts what it is given.
type counting struct {
	slog.Handler
	n *int
}

func (c counting) Handle(context.Context, slog.Record) error { *c.n++; return nil }

// The fanout recovers a writer's panic, still feeds the other writer, and
// keeps an error panic's identity.
func TestFanoutRecoversAndKeepsTheOtherWriter(t *testing.T) {
	boom := errors.New("boom")
	base := slog.NewJSONHandler(io.Discard, nil)
	for _, v := range []any{boom, "a string"} {
		n := 0
		f := &fanout{w: panicky{base, v}, x: counting{base, &n}}
		err := f.Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0))
		if err == nil || n != 1 {
			t.Fatalf("panic %v: err %v, other writer got %d records", v, err, n)
		}
		if v == boom && !errors.Is(err, boom) {
			t.Errorf("the panic's error is lost: %v", err)
		}
	}
}
