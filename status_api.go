package observe

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/observekit/observe/internal/otlpjson"
	"github.com/observekit/observe/internal/tracing"
	"go.opentelemetry.io/otel/trace"
)

// The JSON APIs behind the status page. Bad query parameters are a 400
// naming the parameter; an unknown trace a 404.

const (
	defaultTraceLimit = 100
	maxTraceLimit     = 1000
	maxRouteParam     = 512
)

// parseTraceQuery reads GET /debug/traces' parameters: route, status,
// error, min_duration, limit. Unknown parameters are an error too, so a
// misspelt filter is not silently ignored.
func parseTraceQuery(q url.Values) (tracing.TraceFilter, error) {
	f := tracing.TraceFilter{Limit: defaultTraceLimit}
	for k, vs := range q {
		if len(vs) != 1 {
			return f, fmt.Errorf("parameter %q: given %d times, want once", k, len(vs))
		}
		v := vs[0]
		switch k {
		case "route":
			if len(v) > maxRouteParam {
				return f, fmt.Errorf("parameter route: longer than %d bytes", maxRouteParam)
			}
			f.Route = v
		case "status":
			if !validStatusFilter(v) {
				return f, fmt.Errorf("parameter status: %q is not an HTTP status code (503), a class (5xx), a gRPC code name (NOT_FOUND), error, ok or unset", v)
			}
			f.Status = v
		case "error":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return f, fmt.Errorf("parameter error: %q is not true or false", v)
			}
			f.ErrorsOnly = b
		case "min_duration":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return f, fmt.Errorf("parameter min_duration: %q is not a non-negative Go duration such as 250ms", v)
			}
			f.MinDuration = d
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxTraceLimit {
				return f, fmt.Errorf("parameter limit: %q is not a number from 1 to %d", v, maxTraceLimit)
			}
			f.Limit = n
		default:
			return f, fmt.Errorf("unknown parameter %q (accepted: route, status, error, min_duration, limit)", k)
		}
	}
	return f, nil
}

func validStatusFilter(v string) bool {
	switch v {
	case "error", "ok", "unset":
		return true
	}
	if len(v) == 3 {
		if v[1:] == "xx" && v[0] >= '1' && v[0] <= '5' {
			return true
		}
		n, err := strconv.Atoi(v)
		return err == nil && n >= 100 && n <= 599
	}
	if v == "" || len(v) > 32 {
		return false
	}
	for _, c := range v {
		if (c < 'A' || c > 'Z') && c != '_' {
			return false
		}
	}
	return true
}

// parseTraceID reads a trace ID: 32 hex digits, not all zero.
func parseTraceID(s string) (trace.TraceID, error) {
	var id trace.TraceID
	if len(s) != 32 {
		return id, fmt.Errorf("trace_id: want 32 hex digits, got %d characters", len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, errors.New("trace_id: not hexadecimal")
	}
	if !id.IsValid() {
		return id, errors.New("trace_id: all zeros is not a trace ID")
	}
	return id, nil
}

type tracesDoc struct {
	Traces []tracing.TraceSummary `json:"traces"`
	Store  *tracing.StoreStats    `json:"store,omitempty"`
	Note   string                 `json:"note,omitempty"`
}

func (o *Observer) serveTraces(w http.ResponseWriter, r *http.Request) {
	f, err := parseTraceQuery(r.URL.Query())
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	if o.tracing == nil {
		writeJSON(w, http.StatusOK, tracesDoc{Traces: []tracing.TraceSummary{}, Note: "tracing is off (OTEL_SDK_DISABLED=true)"})
		return
	}
	st := o.tracing.Store()
	doc := tracesDoc{Traces: st.Summaries(f)}
	stats := st.Stats()
	doc.Store = &stats
	if doc.Traces == nil {
		doc.Traces = []tracing.TraceSummary{}
	}
	writeJSON(w, http.StatusOK, doc)
}

// serveTrace answers the trace as OTLP/JSON, spans redacted like exported
// ones.
func (o *Observer) serveTrace(w http.ResponseWriter, r *http.Request) {
	id, err := parseTraceID(r.PathValue("trace_id"))
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	if len(r.URL.RawQuery) > 0 {
		badRequest(w, "this endpoint takes no query parameters")
		return
	}
	if o.tracing == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "tracing is off (OTEL_SDK_DISABLED=true)"})
		return
	}
	spans := o.tracing.Store().Trace(id)
	if len(spans) == 0 {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no span of trace " + id.String() + " is held (unknown, or evicted: see trace_store in /debug/status)"})
		return
	}
	req := otlpjson.Build(spans)
	// Span and event names are free text that redaction of attributes
	// does not reach: the page shows them, so they are scrubbed too.
	if o.redactor != nil {
		for i := range req.ResourceSpans {
			for j := range req.ResourceSpans[i].ScopeSpans {
				ss := req.ResourceSpans[i].ScopeSpans[j].Spans
				for k := range ss {
					ss[k].Name = o.redactor.String(ss[k].Name)
					for e := range ss[k].Events {
						ss[k].Events[e].Name = o.redactor.String(ss[k].Events[e].Name)
					}
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, req)
}

// serveLogs answers the kept log lines of a trace, each as written.
func (o *Observer) serveLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "trace_id" {
			badRequest(w, fmt.Sprintf("unknown parameter %q (accepted: trace_id)", k))
			return
		}
	}
	if len(q["trace_id"]) != 1 {
		badRequest(w, "parameter trace_id is required, once")
		return
	}
	id, err := parseTraceID(q.Get("trace_id"))
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	lines := []string{}
	if o.statusLines != nil {
		for _, l := range o.statusLines.Lines(id) {
			lines = append(lines, strings.TrimSuffix(string(l), "\n"))
		}
	}
	writeJSON(w, http.StatusOK, lines)
}
