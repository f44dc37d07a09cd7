package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/observekit/observe/middleware"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
)

// validTraceparent is a reference reading of a W3C traceparent: the trace
// ID it carries, or "". Version 00 is exactly 55 bytes; a later version may
// append fields after a '-'; version ff is invalid.
func validTraceparent(h string) string {
	if len(h) < 55 || (len(h) > 55 && (h[:2] == "00" || h[55] != '-')) || h[:2] == "ff" {
		return ""
	}
	p := strings.Split(h[:55], "-")
	if len(p) != 4 || len(p[0]) != 2 || len(p[1]) != 32 || len(p[2]) != 16 || len(p[3]) != 2 {
		return ""
	}
	for _, s := range p {
		for i := 0; i < len(s); i++ {
			if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return ""
			}
		}
	}
	if p[1] == strings.Repeat("0", 32) || p[2] == strings.Repeat("0", 16) {
		return ""
	}
	// Version 00 defines only the sampled (01) and random (02) flags; the
	// OTel propagator of record rejects a version-00 header with others set.
	if p[0] == "00" && p[3] > "03" {
		return ""
	}
	return p[1]
}

func FuzzHTTPTraceHeaders(f *testing.F) {
	env := setup(f)
	f.Add(incomingTP, "vendor=abc,other=1", "", "", "", "")
	f.Add("00-"+incomingTraceID+"-"+incomingSpanID+"-00", "", "", "", "", "")
	f.Add("ff-"+incomingTraceID+"-"+incomingSpanID+"-01", "", "", "", "", "")
	f.Add("00-00000000000000000000000000000000-"+incomingSpanID+"-01", "", "", "", "", "")
	f.Add("00-"+strings.ToUpper(incomingTraceID)+"-"+incomingSpanID+"-01", "k=v", "", "", "", "")
	f.Add("01-"+incomingTraceID+"-"+incomingSpanID+"-01-extra", "", "", "", "", "")
	f.Add("", "", incomingTraceID+"-"+incomingSpanID+"-1", "", "", "")
	f.Add("", "", "", incomingTraceID, incomingSpanID, "1")
	f.Add("", "", "", incomingTraceID[16:], incomingSpanID, "d")
	f.Add(incomingTP, strings.Repeat("k=v,", 100), "0", "", "", "")
	f.Add("garbage", "\x00\xff", "-", "zz", "zz", "2")

	var sc trace.SpanContext
	h := middleware.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc = trace.SpanContextFromContext(r.Context())
	}))
	f.Fuzz(func(t *testing.T, traceparent, tracestate, b3, b3TraceID, b3SpanID, b3Sampled string) {
		r := httptest.NewRequest("GET", "/fuzz", nil)
		set := func(k, v string) {
			if v != "" {
				r.Header[k] = []string{v}
			}
		}
		set("Traceparent", traceparent)
		set("Tracestate", tracestate)
		set("B3", b3)
		set("X-B3-Traceid", b3TraceID)
		set("X-B3-Spanid", b3SpanID)
		set("X-B3-Sampled", b3Sampled)
		sc = trace.SpanContext{}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
		if !sc.IsValid() {
			t.Fatalf("handler has no valid span context")
		}
		tid := sc.TraceID().String()
		tpID := validTraceparent(traceparent)
		anyB3 := b3 != "" || b3TraceID != "" || b3SpanID != "" || b3Sampled != ""
		if !anyB3 {
			// b3, when present, is extracted after traceparent and wins.
			if tpID != "" && tid != tpID {
				t.Fatalf("valid traceparent %q not continued: trace %s", traceparent, tid)
			}
			if tpID == "" && strings.Contains(traceparent, tid) {
				t.Fatalf("trace %s taken from an invalid traceparent %q", tid, traceparent)
			}
		}
		if ts := sc.TraceState(); ts.Len() > 32 || len(ts.String()) > 512+32 {
			t.Fatalf("tracestate beyond W3C limits: %d members", ts.Len())
		}
		if !strings.Contains(tracestate, "=") && sc.TraceState().Len() > 0 {
			t.Fatalf("tracestate %q invented", sc.TraceState().String())
		}
	})
	_ = env // spans accumulate in its bounded store
}

func FuzzHTTPBaggage(f *testing.F) {
	setup(f)
	f.Add("tenant=acme,user.id=42;prop=1", "", 1)
	f.Add("k=v", "k2=v2", 1)
	f.Add("key%20with%20space=v%2Cx", "", 1)
	f.Add("=novalue,,;", "\x00", 1)
	f.Add("k=v,", "", 200)                          // 800 members: beyond the member limit
	f.Add("k="+strings.Repeat("x", 4000), "", 3)    // oversized: dropped
	f.Add("a="+strings.Repeat("y", 8180), "b=1", 1) // oversized across two headers
	var bag baggage.Baggage
	h := middleware.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bag = baggage.FromContext(r.Context())
	}))
	f.Fuzz(func(t *testing.T, b1, b2 string, repeat int) {
		if repeat < 1 || repeat > 400 {
			repeat = 1
		}
		v1 := strings.Repeat(b1, repeat)
		r := httptest.NewRequest("GET", "/fuzz", nil)
		r.Header["Baggage"] = []string{v1}
		if b2 != "" {
			r.Header["Baggage"] = append(r.Header["Baggage"], b2)
		}
		bag = baggage.Baggage{}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
		total := len(v1)
		if b2 != "" {
			total += 1 + len(b2)
		}
		if total > 8192 && bag.Len() > 0 {
			t.Fatalf("oversized baggage (%d bytes) not dropped: %d members", total, bag.Len())
		}
		if n := len(bag.String()); n > 8192 {
			t.Fatalf("baggage of %d bytes accepted", n)
		}
		if bag.Len() > 64 {
			t.Fatalf("baggage of %d members accepted", bag.Len())
		}
	})
}
