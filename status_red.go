package observe

import (
	"cmp"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/observekit/observe/internal/redsample"
	"github.com/observekit/observe/internal/tracing"
)

// GET /debug/red: the live RED table per route, from the shared sampler of
// the metrics registry (no work per request): rate, error ratio and
// latency quantiles over the last 1 and 5 minutes, and the per-interval
// history (up to 15 minutes) for sparklines.

type redDoc struct {
	IntervalSeconds float64  `json:"interval_seconds"`
	Routes          []redRow `json:"routes"`
	Evicted         uint64   `json:"evicted"` // routes beyond the sampler's bound, not tracked
	Note            string   `json:"note,omitempty"`
}

type redRow struct {
	Kind  string     `json:"kind"`  // http_server, http_client, rpc_server, rpc_client
	Route string     `json:"route"` // http_route, server_address or rpc_method
	M1    redFigures `json:"m1"`
	M5    redFigures `json:"m5"`
	Spark redSpark   `json:"spark"`
	// SlowestTrace is the slowest trace the store holds whose root is
	// this route's (server routes only).
	SlowestTrace   string `json:"slowest_trace,omitempty"`
	ErrorsInTraces bool   `json:"errors_5m_traces,omitempty"`
	// Exemplars are the duration histogram's exemplars of the route whose
	// trace the store still holds, slowest first.
	Exemplars []redExemplar `json:"exemplars,omitempty"`
}

type redExemplar struct {
	TraceID string    `json:"trace_id"`
	ValueMS float64   `json:"value_ms"`
	Time    time.Time `json:"time"`
}

type redFigures struct {
	Count      uint64   `json:"count"`
	Rate       float64  `json:"rate"` // per second
	ErrorRatio float64  `json:"error_ratio"`
	P50        *float64 `json:"p50_ms"` // null when there was no request
	P95        *float64 `json:"p95_ms"`
	P99        *float64 `json:"p99_ms"`
}

type redSpark struct {
	Start  []time.Time `json:"start"`
	Rate   []float64   `json:"rate"`
	Errors []float64   `json:"error_ratio"`
	P95    []*float64  `json:"p95_ms"`
}

type redStats struct {
	Routes  int    `json:"routes"`
	Evicted uint64 `json:"evicted"`
}

func (o *Observer) redStats() *redStats {
	if o.red == nil {
		return nil
	}
	return &redStats{Routes: len(o.red.Keys()), Evicted: o.red.Evicted()}
}

func ms(seconds float64) *float64 {
	if math.IsNaN(seconds) || math.IsInf(seconds, 0) {
		return nil
	}
	v := seconds * 1000
	return &v
}

func figures(d redsample.Delta) redFigures {
	return redFigures{
		Count: d.Count, Rate: d.Rate(), ErrorRatio: d.ErrorRatio(),
		P50: ms(d.Quantile(0.50)), P95: ms(d.Quantile(0.95)), P99: ms(d.Quantile(0.99)),
	}
}

func (o *Observer) serveRED(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.RawQuery) > 0 {
		badRequest(w, "this endpoint takes no query parameters")
		return
	}
	writeJSON(w, http.StatusOK, o.redDoc())
}

func (o *Observer) redDoc() redDoc {
	doc := redDoc{Routes: []redRow{}, IntervalSeconds: 10}
	if o.red == nil {
		doc.Note = "metrics are off (OTEL_SDK_DISABLED=true or OTEL_METRICS_EXPORTER=none): there is no RED table"
		return doc
	}
	doc.Evicted = o.red.Evicted()
	doc.IntervalSeconds = o.red.Interval().Seconds()
	slowest := map[string]tracing.TraceSummary{}
	if o.tracing != nil {
		for _, s := range o.tracing.Store().Summaries(tracing.TraceFilter{Limit: math.MaxInt}) {
			if s.Route == "" || s.Kind != "server" {
				continue
			}
			if cur, ok := slowest[s.Route]; !ok || s.Duration > cur.Duration {
				slowest[s.Route] = s
			}
		}
	}
	exemplars := o.exemplars()
	for _, k := range o.red.Keys() {
		hist := o.red.History(k)
		if len(hist) == 0 {
			continue
		}
		m5 := o.red.Window(k, 5*time.Minute)
		if m5.Count == 0 && o.red.Window(k, 15*time.Minute).Count == 0 {
			continue // nothing in the history shown
		}
		row := redRow{Kind: string(k.Kind), Route: k.Route, M1: figures(o.red.Window(k, time.Minute)), M5: figures(m5)}
		for _, d := range hist {
			row.Spark.Start = append(row.Spark.Start, d.Start.UTC())
			row.Spark.Rate = append(row.Spark.Rate, d.Rate())
			row.Spark.Errors = append(row.Spark.Errors, d.ErrorRatio())
			row.Spark.P95 = append(row.Spark.P95, ms(d.Quantile(0.95)))
		}
		if k.Kind == redsample.Kind("http_server") || k.Kind == redsample.Kind("rpc_server") {
			if s, ok := slowest[k.Route]; ok {
				row.SlowestTrace = s.TraceID
			}
			row.ErrorsInTraces = m5.Errors > 0
			for _, ex := range exemplars[k] {
				if id, err := parseTraceID(ex.TraceID); err == nil && len(o.tracing.Store().Trace(id)) > 0 {
					row.Exemplars = append(row.Exemplars, ex)
				}
			}
		}
		doc.Routes = append(doc.Routes, row)
	}
	return doc
}

// exemplars reads the server duration histograms' exemplars from the
// registry, per route, slowest first (at most 3 a route).
func (o *Observer) exemplars() map[redsample.Key][]redExemplar {
	out := map[redsample.Key][]redExemplar{}
	if o.metrics == nil || o.tracing == nil {
		return out
	}
	mfs, err := o.metrics.Registry().Gather()
	if err != nil && len(mfs) == 0 {
		return out
	}
	for _, mf := range mfs {
		var kind redsample.Kind
		var label string
		switch mf.GetName() {
		case "http_server_request_duration_seconds":
			kind, label = "http_server", "http_route"
		case "rpc_server_call_duration_seconds":
			kind, label = "rpc_server", "rpc_method"
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			key := redsample.Key{Kind: kind}
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					key.Route = lp.GetValue()
				}
			}
			for _, b := range m.GetHistogram().GetBucket() {
				ex := b.GetExemplar()
				if ex == nil {
					continue
				}
				for _, lp := range ex.GetLabel() {
					if lp.GetName() == "trace_id" {
						out[key] = append(out[key], redExemplar{TraceID: lp.GetValue(), ValueMS: ex.GetValue() * 1000, Time: ex.GetTimestamp().AsTime().UTC()})
					}
				}
			}
		}
	}
	for k, exs := range out {
		slices.SortFunc(exs, func(a, b redExemplar) int { return cmp.Compare(b.ValueMS, a.ValueMS) })
		seen := map[string]bool{}
		exs = slices.DeleteFunc(exs, func(e redExemplar) bool {
			dup := seen[e.TraceID]
			seen[e.TraceID] = true
			return dup
		})
		if len(exs) > 3 {
			exs = exs[:3]
		}
		out[k] = exs
	}
	return out
}
