package observe

import (
	"math"
	"net/http"
	"time"

	"github.com/observekit/observe/internal/redsample"
	"github.com/observekit/observe/tracing"
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
	for _, k := range o.red.Keys() {
		hist := o.red.History(k)
		if len(hist) == 0 {
			continue
		}
		if iv := hist[len(hist)-1].End.Sub(hist[len(hist)-1].Start); iv > 0 {
			doc.IntervalSeconds = iv.Seconds()
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
		}
		doc.Routes = append(doc.Routes, row)
	}
	return doc
}
