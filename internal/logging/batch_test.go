package logging

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/observekit/observe/internal/otlpexport"

	sdklog "go.opentelemetry.io/otel/sdk/log"
)

// blockingExporter blocks every export until its context ends.
type blockingExporter struct{ calls atomic.Int32 }

func (e *blockingExporter) Export(ctx context.Context, _ []sdklog.Record) error {
	e.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}
func (e *blockingExporter) Shutdown(context.Context) error   { return nil }
func (e *blockingExporter) ForceFlush(context.Context) error { return nil }

func TestBatchExportsEverythingAndFlushes(t *testing.T) {
	exp := &memExporter{}
	p, err := NewLoggerProvider(context.Background(), OTLPConfig{Exporter: exp, ExportInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	log, h, _ := newTest(Options{LoggerProvider: p})
	for i := 0; i < 1500; i++ { // more than a batch: the full batches go at once
		log.Info("m", "i", i)
	}
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.all()); n != 1500 {
		t.Fatalf("%d exported after ForceFlush, want 1500", n)
	}
	log.Info("last")
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.all()); n != 1501 || h.Dropped() != 0 || h.ExportFailures() != 0 {
		t.Fatalf("after Shutdown: %d exported, %d dropped, %d failures", n, h.Dropped(), h.ExportFailures())
	}
}

func TestBatchQueueFullDropsCountedAndShutdownHonoursDeadline(t *testing.T) {
	exp := &blockingExporter{}
	p, err := NewLoggerProvider(context.Background(), OTLPConfig{Exporter: exp, Export: otlpexport.Config{Timeout: time.Hour}, ExportInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	log, h, lb := newTest(Options{LoggerProvider: p})
	for i := 0; i < 5000; i++ {
		log.Info("m")
	}
	if h.Dropped() < 5000-2*defaultMaxQueue {
		t.Errorf("dropped %d of 5000 with a stuck exporter and a queue of %d", h.Dropped(), defaultMaxQueue)
	}
	if !strings.Contains(lb.String(), `"msg":"observe: log records dropped: the export queue is full"`) {
		t.Error("no WARN line about the full queue")
	}
	if strings.Count(lb.String(), "export queue is full") != 1 {
		t.Error("the queue-full line is not rate limited")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = p.Shutdown(ctx)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %v with a 200ms deadline", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown past its deadline: %v", err)
	}
	if h.Dropped() < 5000-uint64(defaultMaxBatch) {
		t.Errorf("records lost without being counted: dropped %d of 5000", h.Dropped())
	}
}

func TestExportWarnLinesNotExported(t *testing.T) {
	exp := &memExporter{fail: errors.New("nope")}
	p, err := NewLoggerProvider(context.Background(), OTLPConfig{Exporter: exp, ExportInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	log, _, lb := newTest(Options{LoggerProvider: p})
	log.Info("one")
	_ = p.ForceFlush(context.Background()) // fails: a WARN line
	exp.mu.Lock()
	exp.fail = nil
	exp.mu.Unlock()
	log.Info("two")
	_ = p.ForceFlush(context.Background())
	_ = p.Shutdown(context.Background())
	if !strings.Contains(lb.String(), "observe: logs export failed") {
		t.Fatalf("no failure line: %s", lb.String())
	}
	for _, r := range exp.all() {
		if strings.Contains(r.Body().AsString(), "export failed") {
			t.Error("the export's own WARN line was exported")
		}
	}
	if n := len(exp.all()); n != 1 {
		t.Errorf("%d exported, want only \"two\"", n)
	}
}
