package logging

import (
	"context"
	"log/slog"
	"testing"

	"github.com/observekit/observe/internal/evidence"
	"go.opentelemetry.io/otel/trace"
)

// While an anomaly keeps a route's logs, every line of its requests' traces
// (remembered by the trace sampler, sampled or not) passes log sampling,
// without a sample_rate; other traces are sampled as before.
func TestSamplingKeepsAnomalyEvidence(t *testing.T) {
	log, h, lb := newTest(Options{Levels: NewLevelController(slog.LevelDebug), Sampling: SampleRates{Debug: 0.0001, Info: 0.0001}})
	kept := trace.TraceID{0xa1, 0x01}
	other := trace.TraceID{0xa1, 0x02}
	evidence.Set(evidence.List{Logs: true, Routes: []evidence.Route{{Kind: "http_server", Route: "/slow"}}})
	defer evidence.Set(evidence.List{})
	evidence.MarkTrace(kept)
	for range 100 {
		log.DebugContext(spanContextWith(kept, false), "d")
		log.InfoContext(spanContextWith(kept, false), "i")
		log.InfoContext(spanContextWith(other, false), "other")
	}
	recs := lb.records(t)
	if len(recs) != 200 {
		t.Fatalf("%d lines kept, want the 200 of the anomaly's trace", len(recs))
	}
	for _, r := range recs {
		if r["msg"] == "other" || r["sample_rate"] != nil {
			t.Fatalf("line %v", r)
		}
	}
	if h.Dropped() != 100 {
		t.Errorf("dropped %d, want the other trace's 100", h.Dropped())
	}
	// After the anomaly (and its tail) the trace is sampled like any other.
	evidence.Set(evidence.List{})
	for range 100 {
		log.InfoContext(spanContextWith(kept, false), "after")
	}
	if n := len(lb.lines()); n != 200 {
		t.Errorf("%d lines after the anomaly ended, want none kept", n-200)
	}
}

// Lines marked with evidence.KeepLines (the anomaly detector's own INFO
// lines) pass sampling, without a sample_rate.
func TestSamplingKeepsMarkedLines(t *testing.T) {
	log, h, lb := newTest(Options{Levels: NewLevelController(slog.LevelDebug), Sampling: SampleRates{Info: 0.0001}})
	ctx := evidence.KeepLines(context.Background())
	for range 50 {
		log.InfoContext(ctx, "anomaly ended")
		log.Info("unmarked")
	}
	recs := lb.records(t)
	if len(recs) != 50 || h.Dropped() != 50 {
		t.Fatalf("%d lines kept (want the 50 marked), %d dropped", len(recs), h.Dropped())
	}
	for _, r := range recs {
		if r["msg"] != "anomaly ended" || r["sample_rate"] != nil {
			t.Fatalf("line %v", r)
		}
	}
}
