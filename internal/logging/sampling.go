package logging

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/observekit/observe/internal/evidence"
	"go.opentelemetry.io/otel/trace"
)

// SampleRates are the fractions of lines kept per level, each in (0, 1]. The
// zero value of a field keeps every line of that level. Debug covers DEBUG
// and anything below it; Info covers INFO up to, not including, WARN. WARN
// and ERROR lines are never sampled.
type SampleRates struct {
	Debug float64
	Info  float64
}

// IsZero reports whether r keeps everything.
func (r SampleRates) IsZero() bool {
	return (r.Debug == 0 || r.Debug >= 1) && (r.Info == 0 || r.Info >= 1)
}

// String returns r in the form ParseSampleRates reads: "debug=0.1,info=0.5",
// or "" when nothing is sampled.
func (r SampleRates) String() string {
	var parts []string
	if r.Debug > 0 && r.Debug < 1 {
		parts = append(parts, "debug="+strconv.FormatFloat(r.Debug, 'g', -1, 64))
	}
	if r.Info > 0 && r.Info < 1 {
		parts = append(parts, "info="+strconv.FormatFloat(r.Info, 'g', -1, 64))
	}
	return strings.Join(parts, ",")
}

// maxSamplingSpec bounds what ParseSampleRates reads.
const maxSamplingSpec = 256

// ParseSampleRates parses OBSERVE_LOG_SAMPLING: comma-separated level=rate
// pairs such as "debug=0.1,info=0.5", levels debug and info
// (case-insensitive), rates in (0, 1] as decimals. "", "off" and "none"
// sample nothing. WARN and ERROR cannot be sampled; to drop a level
// entirely, raise the log level instead.
func ParseSampleRates(s string) (SampleRates, error) {
	var r SampleRates
	if len(s) > maxSamplingSpec {
		return r, fmt.Errorf("longer than %d bytes", maxSamplingSpec)
	}
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "off", "none":
		return r, nil
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return SampleRates{}, fmt.Errorf("%q is not level=rate", part)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		rate, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(rate) || rate <= 0 || rate > 1 || strings.ContainsAny(v, "xXpP_") {
			return SampleRates{}, fmt.Errorf("rate %q of %s is not a decimal number in (0, 1]", v, k)
		}
		if seen[k] {
			return SampleRates{}, fmt.Errorf("level %s is given twice", k)
		}
		seen[k] = true
		switch k {
		case "debug":
			r.Debug = rate
		case "info":
			r.Info = rate
		case "warn", "warning", "error":
			return SampleRates{}, fmt.Errorf("%s lines are never sampled", k)
		default:
			return SampleRates{}, fmt.Errorf("unknown level %q (accepted: debug, info)", k)
		}
	}
	return r, nil
}

// Validate reports rates outside (0, 1] (0 itself means "not sampled").
func (r SampleRates) Validate() error {
	for _, x := range []struct {
		name string
		v    float64
	}{{"debug", r.Debug}, {"info", r.Info}} {
		if math.IsNaN(x.v) || x.v < 0 || x.v > 1 {
			return fmt.Errorf("%s rate %v is not in (0, 1]", x.name, x.v)
		}
	}
	return nil
}

// sampler keeps a fraction of DEBUG and INFO lines. The decision is taken in
// Enabled, before the record is built:
//
//   - lines of a request marked for debug are all kept;
//   - lines whose span is sampled (the trace is being recorded) are all kept,
//     so every trace that reaches the tracing backend has its complete logs;
//   - lines with an unsampled span are kept by their trace ID, so a trace's
//     lines at one level are all kept or all dropped, and a trace kept at
//     the lower rate is also kept at the higher one;
//   - lines without a span are kept at random.
//
// Lines kept by a rate carry sample_rate at the top of the line. A record whose Enabled was asked
// twice (a caller checking Enabled itself before logging) is decided twice;
// for lines without a trace that compounds the rate.
type sampler struct {
	debugRate, infoRate float64
	debugThr, infoThr   uint64 // rate scaled to [0, 2^64)
	debug               *debugVerifier
	dropped             atomic.Uint64
}

func newSampler(r SampleRates, dv *debugVerifier) *sampler {
	if r.IsZero() || r.Validate() != nil {
		return nil
	}
	s := &sampler{debugRate: 1, infoRate: 1, debug: dv}
	if r.Debug > 0 && r.Debug < 1 {
		s.debugRate, s.debugThr = r.Debug, threshold(r.Debug)
	}
	if r.Info > 0 && r.Info < 1 {
		s.infoRate, s.infoThr = r.Info, threshold(r.Info)
	}
	return s
}

func threshold(rate float64) uint64 {
	return uint64(math.Ldexp(rate, 64))
}

// rate returns the keep rate and threshold for level l.
func (s *sampler) rate(l slog.Level) (float64, uint64) {
	switch {
	case l >= slog.LevelWarn:
		return 1, 0
	case l >= slog.LevelInfo:
		return s.infoRate, s.infoThr
	default:
		return s.debugRate, s.debugThr
	}
}

// keep decides whether a line at l is kept, and counts it when not.
func (s *sampler) keep(ctx context.Context, l slog.Level) bool {
	rate, thr := s.rate(l)
	if rate >= 1 {
		return true
	}
	if debugActive.Load() > 0 && debugEnabled(ctx) {
		return true
	}
	sc := trace.SpanContextFromContext(ctx)
	if sc.IsSampled() || evidence.LogsKept(sc.TraceID()) || evidence.LinesKept(ctx) { // anomalies: internal/evidence
		return true
	}
	var u uint64
	if sc.HasTraceID() {
		tid := sc.TraceID()
		u = mix64(binary.BigEndian.Uint64(tid[8:]) ^ binary.BigEndian.Uint64(tid[:8]))
	} else {
		u = rand.Uint64()
	}
	if u < thr {
		return true
	}
	s.dropped.Add(1)
	return false
}

// annotation returns the sample_rate a kept line at l carries, or nil.
func (s *sampler) annotation(ctx context.Context, l slog.Level) *float64 {
	var rate *float64
	switch {
	case l >= slog.LevelWarn:
		return nil
	case l >= slog.LevelInfo:
		rate = &s.infoRate
	default:
		rate = &s.debugRate
	}
	if sc := trace.SpanContextFromContext(ctx); *rate >= 1 || sc.IsSampled() || evidence.LogsKept(sc.TraceID()) || evidence.LinesKept(ctx) {
		return nil
	}
	if debugActive.Load() > 0 && debugEnabled(ctx) {
		return nil
	}
	return rate
}

// sampleRateKey carries a kept line's *float64 sample rate from the stage to
// the writers, which put it at the top of the line whatever groups are open.
type sampleRateKey struct{}

func sampleRateFrom(ctx context.Context) (float64, bool) {
	if p, ok := ctx.Value(sampleRateKey{}).(*float64); ok {
		return *p, true
	}
	return 0, false
}

// mix64 is SplitMix64's finalizer: trace IDs are random in principle, but
// not every producer makes the low bytes so.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// stage is the sampler as a slog-multi middleware.
func (s *sampler) stage(next slog.Handler) slog.Handler {
	return &samplingStage{s: s, next: next}
}

// samplingStage decides in Enabled and adds sample_rate in Handle.
type samplingStage struct {
	s    *sampler
	next slog.Handler
}

func (st *samplingStage) Enabled(ctx context.Context, l slog.Level) bool {
	return st.s.keep(ctx, l)
}

func (st *samplingStage) Handle(ctx context.Context, r slog.Record) error {
	if rate := st.s.annotation(ctx, r.Level); rate != nil {
		ctx = context.WithValue(ctx, sampleRateKey{}, rate)
	}
	return st.next.Handle(ctx, r)
}

func (st *samplingStage) WithAttrs(as []slog.Attr) slog.Handler {
	return &samplingStage{s: st.s, next: st.next.WithAttrs(as)}
}

func (st *samplingStage) WithGroup(name string) slog.Handler {
	return &samplingStage{s: st.s, next: st.next.WithGroup(name)}
}
