package logging

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
)

// Per-request debug.
//
// A request carrying "X-Observe-Debug: <debug token>" is logged at DEBUG for
// its whole span tree, downstream services included, whatever the levels
// say, and none of its lines are sampled out. The debug token
// (OBSERVE_DEBUG_TOKEN, Options.DebugToken) is a secret of its own: the
// header reaches every public endpoint, so it must never be the admin
// token, which guards PUT /loglevel and pprof. Without one, per-request
// debug is off.
//
// Design. The first service checks the header against its debug token
// (constant time) and, when it matches, marks the request context and adds
// the baggage member observe.debug=<proof> for downstream services. The
// proof is never the token: it is
//
//	1.<expiry, unix seconds, base 36>.<HMAC-SHA256(k, trace ID ‖ expiry), 128 bits, base64url>
//
// with k derived from the debug token, so it is bound to one trace and
// expires after debugProofTTL. A downstream service honours the member only
// if it recomputes the same proof, that is, only if it is configured with
// the same debug token; everywhere else an observe.debug member is removed
// from the request's baggage, so a forged or foreign one neither turns on
// debug nor travels further. A service without a debug token honours
// nothing.
//
// Guessing. Every header that does not match is counted (DebugTokenFailures,
// observe_debug_token_failures_total{reason="mismatch"}), and failures are
// rate limited by a token bucket of 10 refilled at 5 per second: once it is
// empty, a header is rejected without being compared
// (reason="rate_limited"), so the public port cannot be used to try more
// than 5 guesses a second. While it is
// empty, the right token is refused too; the bucket refills by itself. The header is removed from the request once read (so handlers
// cannot echo or forward it) and is never written to a log line or a
// response.
//
// Limits.
//   - Anyone who sees a proof (it travels in clear in baggage, to every
//     service the request calls through an instrumented client, third parties
//     included) can replay it, for the same trace ID, until it expires: they
//     get DEBUG logging of requests they send, nothing more. Keep the TTL
//     short and do not propagate baggage to untrusted parties.
//   - Without tracing (no valid trace ID) the proof is bound to the all-zero
//     trace ID, that is, to nothing: replayable for any request until expiry.
//   - The proof crosses services only if the baggage propagator is on
//     (OTEL_PROPAGATORS includes baggage, the default).
//   - Work that outlives the request (a goroutine still logging after the
//     handler returned) is no longer logged at DEBUG: the fast path of
//     Enabled consults the context only while a debug request is in flight.

// debugHeader is the request header (gRPC: metadata key, lower case) that
// asks for per-request debug; its value must be the debug token.
const debugHeader = "X-Observe-Debug"

// debugBaggageKey is the W3C baggage member that carries the proof of a
// per-request debug downstream.
const debugBaggageKey = "observe.debug"

// debugProofTTL is how long a proof minted by the first service stays valid.
const debugProofTTL = 10 * time.Minute

// debugActive counts requests marked for debug now in flight in the
// process. While it is zero, Enabled never looks into the context.
var debugActive atomic.Int64

type debugCtxKey struct{}

// debugEnabled reports whether ctx belongs to a request marked for debug.
func debugEnabled(ctx context.Context) bool {
	if ctx == nil {
		return false
	}
	v, _ := ctx.Value(debugCtxKey{}).(bool)
	return v
}

// debugFailureRate and debugFailureBurst bound the X-Observe-Debug headers
// compared against the debug token: a burst of debugFailureBurst failed
// ones, then debugFailureRate a second.
const (
	debugFailureRate  = 5
	debugFailureBurst = 10
)

// debugVerifier holds what per-request debug needs from the debug token.
type debugVerifier struct {
	tokenSum [sha256.Size]byte // of the token, for a length-independent compare
	key      []byte            // HMAC key of proofs, derived from the token

	mu     sync.Mutex
	budget float64   // failed compares left, refilled at debugFailureRate/s
	last   time.Time // of the last refill

	mismatched, limited atomic.Uint64
}

func newDebugVerifier(token string) *debugVerifier {
	if token == "" {
		return nil
	}
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("observe per-request debug proof v1"))
	return &debugVerifier{tokenSum: sha256.Sum256([]byte(token)), key: m.Sum(nil), budget: debugFailureBurst}
}

// take reserves one compare from the bucket; false: none is left.
func (d *debugVerifier) take(now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.last.IsZero() {
		d.budget = min(debugFailureBurst, d.budget+now.Sub(d.last).Seconds()*debugFailureRate)
	}
	d.last = now
	if d.budget < 1 {
		return false
	}
	d.budget--
	return true
}

// refund gives back the compare of a header that matched: only failures
// spend the bucket.
func (d *debugVerifier) refund() {
	d.mu.Lock()
	d.budget = min(debugFailureBurst, d.budget+1)
	d.mu.Unlock()
}

// tokenOK compares header with the token in constant time, within the
// failure budget; every failure is counted.
func (d *debugVerifier) tokenOK(header string, now time.Time) bool {
	// The compare is reserved before it is made, so concurrent guesses
	// cannot all pass a check of the budget before any is counted.
	if !d.take(now) {
		d.limited.Add(1)
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(header)))
	if subtle.ConstantTimeCompare(sum[:], d.tokenSum[:]) == 1 {
		d.refund()
		return true
	}
	d.mismatched.Add(1)
	return false
}

func (d *debugVerifier) mac(tid trace.TraceID, exp int64) []byte {
	m := hmac.New(sha256.New, d.key)
	var buf [len(trace.TraceID{}) + 8]byte
	copy(buf[:], tid[:])
	binary.BigEndian.PutUint64(buf[len(tid):], uint64(exp))
	m.Write(buf[:])
	return m.Sum(nil)[:16]
}

// mint returns a proof for the trace, valid until now+debugProofTTL.
func (d *debugVerifier) mint(tid trace.TraceID, now time.Time) string {
	exp := now.Add(debugProofTTL).Unix()
	return "1." + strconv.FormatInt(exp, 36) + "." + base64.RawURLEncoding.EncodeToString(d.mac(tid, exp))
}

// verify reports whether proof was minted with the same token for the trace
// and has not expired.
func (d *debugVerifier) verify(proof string, tid trace.TraceID, now time.Time) bool {
	if len(proof) > 64 {
		return false
	}
	v, rest, ok := strings.Cut(proof, ".")
	if !ok || v != "1" {
		return false
	}
	expS, sigS, ok := strings.Cut(rest, ".")
	if !ok {
		return false
	}
	exp, err := strconv.ParseInt(expS, 36, 64)
	if err != nil {
		return false
	}
	// Expired, or further in the future than any proof we mint (a minute of
	// clock skew between services allowed).
	if exp <= now.Unix() || exp > now.Add(debugProofTTL+time.Minute).Unix() {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigS)
	if err != nil {
		return false
	}
	return hmac.Equal(sig, d.mac(tid, exp))
}

// StartRequestDebug applies per-request debug to a server request, after
// propagation was extracted into ctx and the server span started. header is
// the X-Observe-Debug value ("" when absent). When the header holds the
// debug token, or the baggage holds a proof this service can verify, it
// returns ctx marked for debug (and carrying a proof for downstream calls)
// and true; the caller must then call EndRequestDebug when the request
// ends. Otherwise it returns ctx without any observe.debug baggage member,
// and false. It uses the root handler observe.Init made current; without one nothing is
// honoured.
func StartRequestDebug(ctx context.Context, header string) (context.Context, bool) {
	bag := baggage.FromContext(ctx)
	member := bag.Member(debugBaggageKey)
	hasMember := member.Key() != ""
	if header == "" && !hasMember {
		return ctx, false
	}
	var dv *debugVerifier
	if h := rootHandler(); h != nil {
		dv = h.p.debug
	}
	on, keep := false, false // keep: the member in ctx's baggage is a valid proof
	if dv != nil {
		tid := trace.SpanContextFromContext(ctx).TraceID()
		now := time.Now()
		switch {
		case hasMember && dv.verify(member.Value(), tid, now):
			on, keep = true, true
		case header != "" && dv.tokenOK(header, now):
			on = true
			if m, err := baggage.NewMemberRaw(debugBaggageKey, dv.mint(tid, now)); err == nil {
				if b, err := bag.SetMember(m); err == nil {
					bag, keep, hasMember = b, true, true
				}
			}
		}
	}
	switch {
	case hasMember && keep:
		ctx = baggage.ContextWithBaggage(ctx, bag)
	case hasMember:
		ctx = baggage.ContextWithBaggage(ctx, bag.DeleteMember(debugBaggageKey))
	}
	if !on {
		return ctx, false
	}
	debugActive.Add(1)
	return context.WithValue(ctx, debugCtxKey{}, true), true
}

// EndRequestDebug ends a request for which StartRequestDebug returned true.
func EndRequestDebug() {
	debugActive.Add(-1)
}

// DebugTokenFailures reports the X-Observe-Debug headers refused since New:
// mismatched were compared with the debug token and differed; limited were
// refused uncompared, the failure budget being spent. observe exports them as
// observe_debug_token_failures_total{reason="mismatch"|"rate_limited"}.
func (h *Handler) DebugTokenFailures() (mismatched, limited uint64) {
	if h == nil || h.p.debug == nil {
		return 0, 0
	}
	return h.p.debug.mismatched.Load(), h.p.debug.limited.Load()
}
