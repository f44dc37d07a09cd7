package logging

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe/internal/wiring"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
)

func TestDebugProof(t *testing.T) {
	a := newDebugVerifier("token-A")
	b := newDebugVerifier("token-B")
	now := time.Now()
	p := a.mint(testTraceID, now)
	if strings.Contains(p, "token-A") {
		t.Fatal("proof contains the token")
	}
	if !a.verify(p, testTraceID, now) || !a.verify(p, testTraceID, now.Add(debugProofTTL-time.Second)) {
		t.Fatal("own proof rejected")
	}
	other := testTraceID
	other[0] ^= 1
	for name, ok := range map[string]bool{
		"other token":     b.verify(p, testTraceID, now),
		"other trace":     a.verify(p, other, now),
		"expired":         a.verify(p, testTraceID, now.Add(debugProofTTL+time.Second)),
		"flag only":       a.verify("1", testTraceID, now),
		"forged 1":        a.verify("1."+strings.Split(p, ".")[1]+".AAAAAAAAAAAAAAAAAAAAAA", testTraceID, now),
		"far future":      a.verify(a.mint(testTraceID, now.Add(time.Hour)), testTraceID, now),
		"tampered expiry": a.verify(strings.Replace(p, ".", ".1", 1), testTraceID, now),
		"empty":           a.verify("", testTraceID, now),
		"long":            a.verify(strings.Repeat("1.", 100), testTraceID, now),
	} {
		if ok {
			t.Errorf("%s: accepted", name)
		}
	}
	if newDebugVerifier("") != nil {
		t.Error("a verifier without a token")
	}
	if !a.tokenOK(" token-A ", time.Now()) || a.tokenOK("token-a", time.Now()) || a.tokenOK("", time.Now()) || a.tokenOK("token-A2", time.Now()) {
		t.Error("tokenOK")
	}
}

func withBaggage(t *testing.T, ctx context.Context, key, value string) context.Context {
	t.Helper()
	m, err := baggage.NewMemberRaw(key, value)
	if err != nil {
		t.Fatal(err)
	}
	b, err := baggage.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return baggage.ContextWithBaggage(ctx, b)
}

func TestStartRequestDebug(t *testing.T) {
	log, h, lb := newTest(Options{DebugToken: "s3cret"})
	wiring.LogRoot.Store(h)
	t.Cleanup(func() { wiring.LogRoot.Store(nil) })
	base := withBaggage(t, spanContext(true), "tenant", "acme")

	// No header, no member: nothing happens, the context is untouched.
	if ctx, on := StartRequestDebug(base, ""); on || ctx != base {
		t.Fatal("debug without asking")
	}

	// A wrong token is ignored.
	if ctx, on := StartRequestDebug(base, "guess"); on || debugEnabled(ctx) {
		t.Fatal("wrong token honoured")
	}

	// The right token: debug on, proof in baggage, other members kept.
	ctx, on := StartRequestDebug(base, "s3cret")
	if !on || !debugEnabled(ctx) {
		t.Fatal("valid token not honoured")
	}
	bag := baggage.FromContext(ctx)
	proof := bag.Member(debugBaggageKey).Value()
	if proof == "" || strings.Contains(bag.String(), "s3cret") || bag.Member("tenant").Value() != "acme" {
		t.Fatalf("baggage after start: %q", bag.String())
	}
	log.DebugContext(ctx, "visible")
	log.DebugContext(base, "invisible")
	EndRequestDebug()
	if n := len(lb.lines()); n != 1 {
		t.Fatalf("%d lines: %v", n, lb.lines())
	}
	if strings.Contains(lb.String(), "s3cret") || strings.Contains(lb.String(), proof) {
		t.Fatal("token or proof logged")
	}

	// Downstream: the proof alone turns debug on for the same trace.
	down := withBaggage(t, spanContext(false), debugBaggageKey, proof)
	if ctx, on := StartRequestDebug(down, ""); !on || !debugEnabled(ctx) {
		t.Fatal("valid proof not honoured downstream")
	} else {
		EndRequestDebug()
	}

	// A forged flag is ignored and stripped, so it travels no further.
	for _, forged := range []string{"1", "true", "on", proof + "x"} {
		ctx := withBaggage(t, withBaggage(t, spanContext(true), "tenant", "acme"), debugBaggageKey, forged)
		ctx = baggage.ContextWithBaggage(ctx, mergeBaggage(t, ctx, "tenant", "acme"))
		got, on := StartRequestDebug(ctx, "")
		if on || debugEnabled(got) {
			t.Errorf("forged %q honoured", forged)
		}
		if baggage.FromContext(got).Member(debugBaggageKey).Key() != "" {
			t.Errorf("forged %q not stripped", forged)
		}
		if baggage.FromContext(got).Member("tenant").Value() != "acme" {
			t.Errorf("other members lost stripping %q", forged)
		}
	}

	// The proof is bound to its trace.
	var other trace.TraceID
	other[15] = 9
	if _, on := StartRequestDebug(withBaggage(t, spanContextWith(other, true), debugBaggageKey, proof), ""); on {
		t.Error("proof honoured for another trace")
	}
	if debugActive.Load() != 0 {
		t.Errorf("debugActive = %d after every request ended", debugActive.Load())
	}
}

func mergeBaggage(t *testing.T, ctx context.Context, k, v string) baggage.Baggage {
	t.Helper()
	m, _ := baggage.NewMemberRaw(k, v)
	b, err := baggage.FromContext(ctx).SetMember(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDebugNeedsTheSameToken(t *testing.T) {
	_, hA, _ := newTest(Options{DebugToken: "token-A"})
	_, hB, _ := newTest(Options{DebugToken: "token-B"})
	_, hNone, _ := newTest(Options{})
	t.Cleanup(func() { wiring.LogRoot.Store(nil) })

	wiring.LogRoot.Store(hA)
	ctx, on := StartRequestDebug(spanContext(true), "token-A")
	if !on {
		t.Fatal("A did not honour its token")
	}
	EndRequestDebug()
	proof := baggage.FromContext(ctx).Member(debugBaggageKey).Value()

	for name, h := range map[string]*Handler{"other token": hB, "no token": hNone} {
		wiring.LogRoot.Store(h)
		got, on := StartRequestDebug(withBaggage(t, spanContext(true), debugBaggageKey, proof), "")
		if on {
			EndRequestDebug()
			t.Errorf("%s: proof of A honoured", name)
		}
		if baggage.FromContext(got).Member(debugBaggageKey).Key() != "" {
			t.Errorf("%s: unverifiable proof not stripped", name)
		}
		if _, on := StartRequestDebug(spanContext(true), "token-A"); on {
			EndRequestDebug()
			t.Errorf("%s: token of A honoured", name)
		}
	}
	wiring.LogRoot.Store(nil)
	if _, on := StartRequestDebug(spanContext(true), "token-A"); on {
		t.Error("honoured without a root handler")
	}
}

func TestDebugBypassesLevelsAndSampling(t *testing.T) {
	c := NewLevelController(slog.LevelError)
	log, h, lb := newTest(Options{Levels: c, DebugToken: "tok", Sampling: SampleRates{Debug: 0.01, Info: 0.01}})
	wiring.LogRoot.Store(h)
	t.Cleanup(func() { wiring.LogRoot.Store(nil) })
	db := Named("db")
	ctx, on := StartRequestDebug(spanContext(false), "tok")
	if !on {
		t.Fatal("not on")
	}
	for i := 0; i < 50; i++ {
		log.DebugContext(ctx, "d")
		db.InfoContext(ctx, "i")
	}
	EndRequestDebug()
	if n := len(lb.lines()); n != 100 || h.Dropped() != 0 {
		t.Fatalf("%d lines kept, %d dropped; want all 100", n, h.Dropped())
	}
	for _, r := range lb.records(t) {
		if r["sample_rate"] != nil {
			t.Fatalf("debug line carries sample_rate: %v", r)
		}
	}
	// After the request ended, the fast path no longer looks.
	lb.Reset()
	log.DebugContext(ctx, "late")
	if len(lb.lines()) != 0 {
		t.Errorf("debug outlived the request: %v", lb.lines())
	}
}

// Failed X-Observe-Debug headers are counted and rate limited: past the
// burst, headers are refused uncompared (the right token too) until the
// bucket refills; the right token never spends it.
func TestDebugTokenFailuresCountedAndLimited(t *testing.T) {
	h := New(Options{DebugToken: "debug-tok"})
	v := h.p.debug
	now := time.Unix(1_700_000_000, 0)
	for i := 0; i < 100; i++ {
		if !v.tokenOK("debug-tok", now) {
			t.Fatalf("right token refused at attempt %d", i)
		}
	}
	for i := 0; i < debugFailureBurst; i++ {
		if v.tokenOK("guess", now) {
			t.Fatal("wrong token accepted")
		}
	}
	if m, l := h.DebugTokenFailures(); m != debugFailureBurst || l != 0 {
		t.Fatalf("after the burst: mismatched %d, limited %d", m, l)
	}
	if v.tokenOK("guess", now) || v.tokenOK("debug-tok", now) {
		t.Fatal("accepted with the budget spent")
	}
	if m, l := h.DebugTokenFailures(); m != debugFailureBurst || l != 2 {
		t.Fatalf("past the burst: mismatched %d, limited %d (the right token must not be compared)", m, l)
	}
	// One second later, debugFailureRate more compares.
	now = now.Add(time.Second)
	if !v.tokenOK("debug-tok", now) {
		t.Fatal("right token refused after the refill")
	}
	for i := 0; i < debugFailureRate; i++ {
		v.tokenOK("guess", now)
	}
	v.tokenOK("guess", now)
	if m, l := h.DebugTokenFailures(); m != debugFailureBurst+debugFailureRate || l != 3 {
		t.Fatalf("after the refill: mismatched %d, limited %d", m, l)
	}
	// The bucket never holds more than the burst.
	now = now.Add(time.Hour)
	for i := 0; i < debugFailureBurst+1; i++ {
		v.tokenOK("guess", now)
	}
	if _, l := h.DebugTokenFailures(); l != 4 {
		t.Fatalf("after an hour: limited %d, want 4", l)
	}
	if m, l := New(Options{}).DebugTokenFailures(); m != 0 || l != 0 {
		t.Error("failures without a token")
	}
}

// Through StartRequestDebug: a guess is refused and counted, the right
// token turns debug on; the admin token is nothing to this package.
func TestStartRequestDebugCountsGuesses(t *testing.T) {
	h := New(Options{DebugToken: "debug-tok"})
	prev := rootHandler()
	wiring.LogRoot.Store(h)
	t.Cleanup(func() { wiring.LogRoot.Store(prev) })
	if _, on := StartRequestDebug(context.Background(), "admin-token"); on {
		t.Fatal("guess accepted")
	}
	ctx, on := StartRequestDebug(context.Background(), "debug-tok")
	if !on || !debugEnabled(ctx) {
		t.Fatal("token refused")
	}
	EndRequestDebug()
	if m, l := h.DebugTokenFailures(); m != 1 || l != 0 {
		t.Errorf("mismatched %d, limited %d", m, l)
	}
}
