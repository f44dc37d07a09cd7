package logging

import (
	"bytes"
	"encoding/base64"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// levelRequestErrors matches every message ParseLevelRequest may return:
// fixed texts only, so none can carry the body back to the client.
var levelRequestErrors = regexp.MustCompile(`^(body must be a JSON object like \{"level":"debug","logger":"db","ttl":"10m"\}: ` +
	`(syntax error at byte \d+|field "(level|logger|ttl)" must be a string|not a JSON object|empty body|unexpected end of body|unknown field \(accepted: level, logger, ttl\))` +
	`|body must hold a single JSON object` +
	`|"level" is required \(debug, info, warn, error\)` +
	`|"level" must be one of debug, info, warn, error` +
	`|"logger" must be a dotted name of letters, digits, "_", "-" and "/" \(at most 128 bytes\)` +
	`|"ttl" must be a positive Go duration up to 168h, like "10m")$`)

// FuzzParseLevelRequest: the PUT /loglevel body parser never panics, and
// whatever it accepts is within the documented bounds; its errors never
// echo the body.
func FuzzParseLevelRequest(f *testing.F) {
	for _, s := range []string{
		`{"level":"debug"}`,
		`{"level":"info","logger":"db.pool","ttl":"10m"}`,
		`{"level":"warn","logger":"","ttl":""}`,
		`{"level":"error","ttl":"168h"}`,
		`{"level":"debug","extra":true}`,
		`{"level":"debug"} trailing`,
		`{"level":1}`,
		`[`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseLevelRequest(body)
		if err != nil {
			if !levelRequestErrors.MatchString(err.Error()) {
				t.Fatalf("error is not one of the fixed messages (may echo the body): %q", err)
			}
			return
		}
		if LevelName(req.Level) == "" || !validLoggerName(req.Logger) || req.TTL < 0 || req.TTL > maxLevelTTL {
			t.Fatalf("accepted out of bounds: %+v", req)
		}
		switch LevelName(req.Level) {
		case "debug", "info", "warn", "error":
		default:
			t.Fatalf("accepted level %v", req.Level)
		}
		if req.TTL != 0 && req.TTL < time.Nanosecond {
			t.Fatalf("ttl %v", req.TTL)
		}
	})
}

// FuzzParseSampleRates: the OBSERVE_LOG_SAMPLING parser never panics, what
// it accepts is valid, and String round-trips.
func FuzzParseSampleRates(f *testing.F) {
	for _, s := range []string{
		"debug=0.1,info=0.5", "debug=0.1", "info=1", "off", "", "none",
		"warn=0.5", "debug=0", "debug=NaN", "debug=1e-300", " Debug = .5 ,, ",
		"debug=0.1,debug=0.2", "=", ",",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseSampleRates(s)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted invalid %+v: %v", r, err)
		}
		back, err := ParseSampleRates(r.String())
		if err != nil {
			t.Fatalf("String() %q does not parse: %v", r.String(), err)
		}
		norm := func(x float64) float64 {
			if x >= 1 {
				return 0
			}
			return x
		}
		if norm(back.Debug) != norm(r.Debug) || norm(back.Info) != norm(r.Info) {
			t.Fatalf("round trip %+v → %q → %+v", r, r.String(), back)
		}
		if s := newSampler(r, nil); s != nil && (s.debugRate <= 0 || s.infoRate <= 0) {
			t.Fatalf("sampler with a zero rate from %q", r.String())
		}
	})
}

// FuzzDebugProof: the per-request debug proof (the observe.debug baggage
// member a service receives from the wire) never panics the verifier; a
// proof minted for a trace verifies for that trace only; a fuzzed proof
// verifies only when it is the one minted (same expiry, same signature
// bytes), so a truncated, padded or other trace's signature never passes.
func FuzzDebugProof(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	dv := newDebugVerifier("fuzz-admin-token")
	tid := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	good := dv.mint(tid, now)
	f.Add(good, tid[:])
	f.Add(good+"x", tid[:])
	f.Add(good[:len(good)-2], tid[:])
	f.Add("1.zzzzzzzzzzzzz.AAAA", tid[:])
	f.Add("1.-1.AAAA", make([]byte, 16))
	f.Add("2."+good[2:], tid[:])
	f.Add("", []byte{})
	f.Fuzz(func(t *testing.T, proof string, id []byte) {
		var tid trace.TraceID
		copy(tid[:], id)
		if dv.verify(proof, tid, now) {
			// Accepted: it must carry this trace's signature for an
			// expiry within the window.
			_, rest, _ := strings.Cut(proof, ".")
			expS, sigS, _ := strings.Cut(rest, ".")
			exp, err := strconv.ParseInt(expS, 36, 64)
			sig, err2 := base64.RawURLEncoding.DecodeString(sigS)
			if err != nil || err2 != nil || exp <= now.Unix() || !bytes.Equal(sig, dv.mac(tid, exp)) {
				t.Fatalf("verify accepted %q for trace %s", proof, tid)
			}
		}
		minted := dv.mint(tid, now)
		if !dv.verify(minted, tid, now) {
			t.Fatalf("a freshly minted proof %q does not verify", minted)
		}
		other := tid
		other[0] ^= 0xff
		if dv.verify(minted, other, now) {
			t.Fatalf("proof for %s verifies for %s", tid, other)
		}
		if dv.verify(minted, tid, now.Add(debugProofTTL+time.Second)) {
			t.Fatal("an expired proof verifies")
		}
	})
}
