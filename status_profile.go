package observe

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/observekit/observe/internal/cpuring"
	"github.com/observekit/observe/internal/logging"
	"github.com/observekit/observe/internal/profiling"
	"go.opentelemetry.io/otel/attribute"
)

// The profile of a trace: with span↔profile links on, the CPU samples of a
// request carry its local root span's ID as the span_id pprof label, and
// the recent CPU profiles are kept in a bounded ring (internal/cpuring).
// GET /debug/traces/{trace_id}/profile cuts the trace's samples out of the
// profiles overlapping it.

// newProfileRing returns the ring of recent CPU profiles when links are
// on, nil otherwise.
func (o *Observer) newProfileRing() *cpuring.Ring {
	if !o.cfg.profileLinksOn() || o.tracing == nil {
		return nil
	}
	return cpuring.New(o.cfg.statusProfiles, o.cfg.statusProfBytes)
}

// startTraceProfiles feeds the ring: the Pyroscope push does when it runs
// (profilingConfig hands it each CPU profile it uploads), else a collector
// of its own that sends nothing anywhere.
func (o *Observer) startTraceProfiles() error {
	if o.cpuProfiles == nil || o.profiler.Pushing() {
		return nil
	}
	log := logging.Named("observe.profiling")
	c, err := cpuring.StartCollector(o.cpuProfiles, o.profilePeriod(), log)
	if err != nil {
		// Not an Init error: Init fails only for bad configuration. The
		// trace view then says its profile is pending.
		log.Warn("the profile of a trace is unavailable: the CPU profile collector did not start", "error", err.Error())
		return nil
	}
	o.cpuCollector = c
	return nil
}

// profilePeriod is how often the ring gets a CPU profile: the collector's
// period, or the push's upload interval when Pyroscope feeds it.
func (o *Observer) profilePeriod() time.Duration {
	switch {
	case o.profiler.Pushing():
		// pyroscope-go v1.4.3 cuts a CPU profile every second upload
		// interval (see cpuring.StartCollector).
		if o.cfg.profileUploadInterval > 0 {
			return 2 * o.cfg.profileUploadInterval
		}
		return 2 * 15 * time.Second // the default upload interval (internal/profiling)
	case o.cfg.statusProfEvery > 0:
		return o.cfg.statusProfEvery
	}
	return cpuring.DefaultPeriod
}

// traceProfileDoc is the JSON form of GET /debug/traces/{id}/profile.
type traceProfileDoc struct {
	TraceID  string    `json:"trace_id"`
	Spans    []string  `json:"span_ids"` // the local root spans whose samples these are
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Searched int       `json:"profiles_searched"`
	// Partial: the trace ends after the newest kept profile, so the
	// samples of its end are still being collected.
	Partial bool `json:"partial,omitempty"`
	cpuring.Summary
}

// traceProfileError is a 404's body: Reason lets the page say why.
type traceProfileError struct {
	Error    string `json:"error"`
	Reason   string `json:"reason"` // unknown_trace, links_off, not_linked, pending, evicted, no_samples
	Searched int    `json:"profiles_searched,omitempty"`
	RetryMs  int64  `json:"retry_after_ms,omitempty"`
}

func (o *Observer) serveTraceProfile(w http.ResponseWriter, r *http.Request) {
	id, err := parseTraceID(r.PathValue("trace_id"))
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	format := "pprof"
	for k, vs := range r.URL.Query() {
		if k != "format" || len(vs) != 1 || (vs[0] != "pprof" && vs[0] != "json") {
			badRequest(w, "accepted parameter: format=pprof (the default) or format=json, once")
			return
		}
		format = vs[0]
	}
	notFound := func(e traceProfileError) {
		if e.RetryMs > 0 {
			w.Header().Set("Retry-After", fmt.Sprint((e.RetryMs+999)/1000))
		}
		writeJSON(w, http.StatusNotFound, e)
	}
	if o.tracing == nil {
		notFound(traceProfileError{Error: "tracing is off (OTEL_SDK_DISABLED=true)", Reason: "unknown_trace"})
		return
	}
	spans := o.tracing.Store().Trace(id)
	if len(spans) == 0 {
		notFound(traceProfileError{Error: "no span of trace " + id.String() + " is held (unknown, or evicted: see trace_store in /debug/status)", Reason: "unknown_trace"})
		return
	}
	if o.cpuProfiles == nil {
		notFound(traceProfileError{Error: "span↔profile links are off, so no CPU profile is kept in process: turn them on with OBSERVE_PROFILE_LINKS=on or observe.WithProfileLinks(true)", Reason: "links_off"})
		return
	}
	// The local root spans carry pyroscope.profile.id: their IDs label the
	// samples of everything they ran, child spans included.
	ids := map[string]bool{}
	var from, to time.Time
	for _, s := range spans {
		for _, kv := range s.Attributes() {
			if kv.Key == profiling.ProfileIDAttribute {
				ids[kv.Value.AsString()] = true
				if from.IsZero() || s.StartTime().Before(from) {
					from = s.StartTime()
				}
				if s.EndTime().After(to) {
					to = s.EndTime()
				}
			}
		}
	}
	if len(ids) == 0 {
		notFound(traceProfileError{Error: "no span of this trace carries " + string(profiling.ProfileIDAttribute) + ": it was not sampled when it started here, or links were off then", Reason: "not_linked"})
		return
	}
	cut, err := o.cpuProfiles.ForSpans(ids, from, to)
	newest := o.cpuProfiles.Stats().Newest
	switch {
	case errors.Is(err, cpuring.ErrNoProfiles) || (err == nil && cut.Profile == nil && to.After(newest)):
		if to.After(newest) {
			// Its samples are in the profile being collected.
			every := o.profilePeriod()
			wait := every.Milliseconds() // no profile cut yet
			if !newest.IsZero() {
				wait = time.Until(newest.Add(every)).Milliseconds()
			}
			notFound(traceProfileError{Error: "the CPU profile covering the end of this trace is still being collected; one is cut every " + every.String(), Reason: "pending", Searched: cut.Searched, RetryMs: max(wait, 1000)})
			return
		}
		notFound(traceProfileError{Error: "no CPU profile covering this trace is held any more (the ring keeps the last " + itoa(o.cfg.statusProfiles) +
			" profiles within " + itoa(o.cfg.statusProfBytes) + " bytes: OBSERVE_STATUS_PROFILES, OBSERVE_STATUS_PROFILE_BYTES)", Reason: "evicted"})
		return
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	case cut.Profile == nil:
		notFound(traceProfileError{Error: fmt.Sprintf("sampling missed this trace: none of the %d CPU profiles covering it has a sample of its spans. At 100 samples per CPU-second, a request that spends less than about 10 ms on a CPU is often not sampled at all", cut.Searched), Reason: "no_samples", Searched: cut.Searched})
		return
	}
	o.redactLabels(cut.Profile)
	if format == "json" {
		doc := traceProfileDoc{TraceID: id.String(), From: from.UTC(), To: to.UTC(), Searched: cut.Searched,
			Partial: to.After(newest), Summary: cpuring.Summarize(cut.Profile)}
		for k := range ids {
			doc.Spans = append(doc.Spans, k)
		}
		slices.Sort(doc.Spans)
		writeJSON(w, http.StatusOK, doc)
		return
	}
	var buf bytes.Buffer
	if err := cut.Profile.Write(&buf); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="trace-`+id.String()+`.pb.gz"`)
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(buf.Bytes())
}

// redactLabels scrubs the samples' string labels (span_name, endpoint and
// whatever the application set with pprof.Do) like span attributes.
func (o *Observer) redactLabels(p *cpuring.Profile) {
	if o.redactor == nil {
		return
	}
	for _, s := range p.Sample {
		for k, vs := range s.Label {
			if k == cpuring.SpanLabel {
				continue
			}
			for i, v := range vs {
				vs[i] = o.redactor.KeyValue(attribute.String(k, v)).Value.Emit()
			}
		}
	}
}

// traceProfileStats is the ring's state for /debug/status.
func (o *Observer) traceProfileStats() *cpuring.Stats {
	if o.cpuProfiles == nil {
		return nil
	}
	s := o.cpuProfiles.Stats()
	return &s
}
