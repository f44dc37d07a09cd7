package observe

import (
	"bytes"
	"context"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/observekit/observe/internal/cpuring"
	"github.com/observekit/observe/internal/logging"
	"github.com/observekit/observe/internal/profiling"
	"github.com/observekit/observe/internal/statuspage"
	"github.com/observekit/observe/internal/tracing"
)

// The status page: GET / on the admin handler, with the JSON APIs it reads
// (status_api.go) and its access rules (status_auth.go). Everything it
// shows is in process: the trace store, the ring of log lines, the RED
// sampler's history of the metrics registry.

// statusState is what the page needs beyond the Observer's signals.
type statusState struct {
	started time.Time
}

type checkResult struct {
	Name     string    `json:"name"`
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`
	Duration float64   `json:"duration_ms"`
	At       time.Time `json:"at"`
}

// newStatusLines returns the ring of log lines the page shows per trace
// (nil when tracing is off: no line would carry a trace_id).
func (o *Observer) newStatusLines() *logging.LineRing {
	if o.cfg.sdkDisabled {
		return nil
	}
	o.statusLines = logging.NewLineRing(o.cfg.statusLogBytes, o.cfg.statusLogLines)
	return o.statusLines
}

// registerStatus adds the page, its assets, sign-in and the JSON APIs.
func (o *Observer) registerStatus(mux *http.ServeMux) {
	o.statusAuth = newStatusAuth(o.cfg.adminToken)
	o.status = &statusState{started: time.Now()}
	mux.Handle("GET /{$}", o.protectStatus(true, http.HandlerFunc(o.servePage)))
	mux.Handle("GET /static/", http.StripPrefix("/static/", statuspage.Assets()))
	mux.HandleFunc("POST /signin", o.serveSignInPost)
	mux.HandleFunc("POST /signout", o.serveSignOut)
	mux.Handle("GET /debug/status", o.protectStatus(false, http.HandlerFunc(o.serveStatus)))
	mux.Handle("GET /debug/traces", o.protectStatus(false, http.HandlerFunc(o.serveTraces)))
	mux.Handle("GET /debug/traces/{trace_id}", o.protectStatus(false, http.HandlerFunc(o.serveTrace)))
	mux.Handle("GET /debug/traces/{trace_id}/profile", o.protectStatus(false, http.HandlerFunc(o.serveTraceProfile)))
	mux.Handle("GET /debug/logs", o.protectStatus(false, http.HandlerFunc(o.serveLogs)))
	mux.Handle("GET /debug/red", o.protectStatus(false, http.HandlerFunc(o.serveRED)))
}

func (o *Observer) servePage(w http.ResponseWriter, r *http.Request) {
	o.renderPage(w, r, http.StatusOK, statuspage.Page, map[string]any{
		"Service": o.cfg.serviceName,
		"CSRF":    o.statusAuth.csrf(),
		"SignOut": o.statusAuth.token != "",
	})
}

func (o *Observer) serveSignIn(w http.ResponseWriter, r *http.Request, code int, msg string) {
	o.renderPage(w, r, code, statuspage.SignIn, map[string]any{
		"Service": o.cfg.serviceName,
		"Error":   msg,
	})
}

func (o *Observer) renderPage(w http.ResponseWriter, r *http.Request, code int, t *template.Template, data map[string]any) {
	// Relative links (static/…, debug/…) need the page's URL to end in a
	// slash: mounted under /admin, a request for /admin is sent to /admin/.
	if p := mountPrefix(r); p != "" && r.URL.Path == "/" && !hasTrailingSlash(r.RequestURI) {
		http.Redirect(w, r, p+"/", http.StatusMovedPermanently)
		return
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func hasTrailingSlash(requestURI string) bool {
	u, err := url.ParseRequestURI(requestURI)
	if err != nil {
		return true
	}
	return len(u.Path) > 0 && u.Path[len(u.Path)-1] == '/'
}

// statusDoc is GET /debug/status: everything on the page but the traces,
// the log lines and the RED table.
type statusDoc struct {
	Identity  identityDoc       `json:"identity"`
	Health    healthDoc         `json:"health"`
	Levels    logging.Snapshot  `json:"levels"`
	Self      selfDoc           `json:"self"`
	Profiling profilingDoc      `json:"profiling"`
	Bounds    map[string]string `json:"bounds"`
}

type identityDoc struct {
	Service       string    `json:"service"`
	Version       string    `json:"version"`
	Environment   string    `json:"environment"`
	Instance      string    `json:"instance"`
	GoVersion     string    `json:"go_version"`
	Module        string    `json:"module"`
	ModuleVersion string    `json:"module_version"`
	Observe       string    `json:"observe_version"`
	Started       time.Time `json:"started"`
	Uptime        string    `json:"uptime"`
	UptimeSeconds float64   `json:"uptime_seconds"`
}

type healthDoc struct {
	Started bool          `json:"started"`
	Ready   bool          `json:"ready"`
	Checks  []checkResult `json:"checks"`
}

type selfDoc struct {
	SpansDropped    uint64              `json:"spans_dropped"`
	LogsDropped     uint64              `json:"logs_dropped"`
	ProfilesDropped uint64              `json:"profiles_dropped"`
	ExportFailures  map[string]uint64   `json:"export_failures"`
	Redactions      map[string]uint64   `json:"redactions"`
	MetricOverflows map[string]uint64   `json:"metric_overflows"` // observations put under _OTHER by a series limit, per metric
	TraceStore      *tracing.StoreStats `json:"trace_store,omitempty"`
	LogRing         *logging.RingStats  `json:"log_ring,omitempty"`
	CPUProfiles     *cpuring.Stats      `json:"cpu_profiles,omitempty"` // the ring behind the profile of a trace
	RED             *redStats           `json:"red,omitempty"`
	Goroutines      int                 `json:"goroutines"`
	HeapBytes       uint64              `json:"heap_bytes"`
	Notes           []string            `json:"notes,omitempty"`
}

type profilingDoc struct {
	Links      bool   `json:"span_profile_links"`
	TraceCPU   bool   `json:"trace_profiles"` // recent CPU profiles kept: a trace's profile can be cut
	Pushing    bool   `json:"pushing"`
	Pyroscope  string `json:"pyroscope,omitempty"` // server URL, without credentials
	App        string `json:"app,omitempty"`       // Pyroscope application name
	SpanIDAttr string `json:"span_attribute"`
}

func (o *Observer) serveStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, o.statusDoc(r.Context()))
}

func (o *Observer) statusDoc(ctx context.Context) statusDoc {
	st := o.status
	up := time.Since(st.started)
	doc := statusDoc{
		Identity: identityDoc{
			Service:       o.cfg.serviceName,
			Version:       o.cfg.serviceVersion,
			Environment:   o.cfg.environment,
			Instance:      o.instance(),
			GoVersion:     runtime.Version(),
			Started:       st.started.UTC(),
			Uptime:        up.Round(time.Second).String(),
			UptimeSeconds: up.Seconds(),
		},
		Health: o.healthDoc(ctx),
		Levels: o.levels.Snapshot(),
		Profiling: profilingDoc{
			Links:      o.cfg.profileLinksOn() && o.tracing != nil,
			Pushing:    o.profiler.Pushing(),
			TraceCPU:   o.cpuProfiles != nil,
			SpanIDAttr: string(profiling.ProfileIDAttribute),
		},
		Bounds: map[string]string{
			"OBSERVE_STATUS_SPANS":         itoa(o.cfg.spanStoreSize),
			"OBSERVE_STATUS_LOG_BYTES":     itoa(o.cfg.statusLogBytes),
			"OBSERVE_STATUS_LOG_LINES":     itoa(o.cfg.statusLogLines),
			"OBSERVE_STATUS_PROFILES":      itoa(o.cfg.statusProfiles),
			"OBSERVE_STATUS_PROFILE_BYTES": itoa(o.cfg.statusProfBytes),
		},
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		doc.Identity.Module, doc.Identity.ModuleVersion = bi.Main.Path, bi.Main.Version
		if bi.Main.Path == "github.com/observekit/observe" {
			doc.Identity.Observe = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/observekit/observe" {
				doc.Identity.Observe = d.Version
			}
		}
	}
	if o.cfg.pyroscopeAddr != "" {
		if u, err := url.Parse(o.cfg.pyroscopeAddr); err == nil {
			u.User = nil
			doc.Profiling.Pyroscope = u.String()
		}
		doc.Profiling.App = profiling.ApplicationName(o.cfg.serviceName)
	}
	doc.Self = o.selfDoc()
	return doc
}

func (o *Observer) selfDoc() selfDoc {
	var s selfDoc
	tel := o.selfTelemetry()
	if tel.SpansDropped != nil {
		s.SpansDropped = tel.SpansDropped()
	}
	if tel.LogsDropped != nil {
		s.LogsDropped = tel.LogsDropped()
	}
	if tel.ProfilesDropped != nil {
		s.ProfilesDropped = tel.ProfilesDropped()
	}
	if tel.ExportFailures != nil {
		s.ExportFailures = tel.ExportFailures()
	}
	if tel.Redactions != nil {
		s.Redactions = tel.Redactions()
	}
	if o.metrics != nil {
		s.MetricOverflows = o.metrics.Overflows()
	}
	if o.tracing != nil {
		ts := o.tracing.Store().Stats()
		s.TraceStore = &ts
	} else {
		s.Notes = append(s.Notes, "tracing is off (OTEL_SDK_DISABLED=true): no traces are kept")
	}
	if o.statusLines != nil {
		rs := o.statusLines.Stats()
		s.LogRing = &rs
	}
	s.CPUProfiles = o.traceProfileStats()
	s.RED = o.redStats()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.HeapBytes = ms.HeapAlloc
	s.Goroutines = runtime.NumGoroutine()
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }

func (o *Observer) instance() string {
	if o.resource != nil {
		if v, ok := o.resource.Set().Value("service.instance.id"); ok {
			return v.Emit()
		}
	}
	host, _ := os.Hostname()
	return host + "/" + itoa(os.Getpid())
}

// healthDoc is the page's health: the lifecycle and the readiness checks'
// results, sorted by name, from the cache /readyz uses (health.go), so
// pages open in many tabs run no check more than once per TTL.
func (o *Observer) healthDoc(ctx context.Context) healthDoc {
	started, ready, checks := o.healthStatus(ctx)
	doc := healthDoc{Started: started, Ready: ready, Checks: make([]checkResult, 0, len(checks))}
	for _, c := range checks {
		doc.Checks = append(doc.Checks, checkResult{Name: c.Name, OK: c.Err == "", Error: c.Err,
			Duration: float64(c.Duration) / 1e6, At: c.At.UTC()})
	}
	return doc
}

// StatusURL returns the status page's URL on the admin listener, with a
// host a person can click (127.0.0.1 or [::1] for a wildcard listener),
// or "" when the listener is off.
func (o *Observer) StatusURL() string {
	if o.adminLn == nil {
		return ""
	}
	host, port, err := net.SplitHostPort(o.adminLn.Addr().String())
	if err != nil {
		return ""
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
	case ip.Equal(net.IPv6unspecified):
		host = "127.0.0.1" // a wildcard listener takes IPv4 too
		if _, _, err := net.SplitHostPort(o.cfg.adminAddr); err == nil && strings.HasPrefix(o.cfg.adminAddr, "[::]") {
			host = "[::1]"
		}
	case ip.Equal(net.IPv4zero):
		host = "127.0.0.1"
	case ip.To4() == nil:
		host = "[" + host + "]"
	}
	return "http://" + host + ":" + port + "/"
}
