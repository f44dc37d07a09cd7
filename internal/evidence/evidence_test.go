package evidence

import (
	"context"
	"encoding/binary"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestForSpan(t *testing.T) {
	if Active() || ForSpan("GET /a", trace.SpanKindServer) != None {
		t.Fatal("listed before Set")
	}
	Set(List{Traces: true, Routes: []Route{{"http_server", "/a/{id}"}, {"rpc_client", "pkg.S/M"}, {"http_client", "api.example.com"}}})
	defer Set(List{})
	cases := []struct {
		name string
		kind trace.SpanKind
		want Decision
	}{
		{"GET /a/{id}", trace.SpanKindServer, Sample},
		{"DELETE /a/{id}", trace.SpanKindServer, Sample},
		{"GET /a/7", trace.SpanKindServer, None}, // a raw path is never a route
		{"GET", trace.SpanKindServer, None},
		{"pkg.S/M", trace.SpanKindClient, Sample},
		{"pkg.S/M", trace.SpanKindServer, None},
		{"GET /a/{id}", trace.SpanKindInternal, None},
		{"GET", trace.SpanKindClient, None}, // HTTP client traces are not forced
	}
	for _, c := range cases {
		if got := ForSpan(c.name, c.kind); got != c.want {
			t.Errorf("ForSpan(%q, %v) = %v, want %v", c.name, c.kind, got, c.want)
		}
	}
	Set(List{Routes: []Route{{"http_server", "/a/{id}"}}}) // neither traces nor logs
	if Active() {
		t.Error("active with no response on")
	}
}

// The traces remembered for the log sampler are bounded; the oldest are
// forgotten and counted.
func TestMarkedTracesBounded(t *testing.T) {
	Set(List{Logs: true, Routes: []Route{{"http_server", "/a"}}})
	defer Set(List{})
	before := Forgotten()
	id := func(i int) trace.TraceID {
		var t trace.TraceID
		binary.BigEndian.PutUint64(t[8:], uint64(i)+1)
		t[0] = 0xee
		return t
	}
	for i := range maxMarked + 10 {
		MarkTrace(id(i))
	}
	MarkTrace(id(maxMarked + 9)) // again: no change
	if got := Forgotten() - before; got != 10 {
		t.Errorf("forgot %d, want 10", got)
	}
	if LogsKept(id(0)) || !LogsKept(id(10)) || !LogsKept(id(maxMarked+9)) {
		t.Error("the bound forgot the wrong traces")
	}
	if !LinesKept(KeepLines(context.Background())) || LinesKept(context.Background()) || LinesKept(nil) {
		t.Error("KeepLines")
	}
}
