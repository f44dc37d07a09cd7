package testbackend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// Pyroscope is a test receiver speaking Pyroscope's ingest protocol (no
// Pyroscope server can be had here): POST /ingest?name=app{k=v,…}&from=&until=
// &spyName=&sampleRate=&units=&aggregationType=, with the profile either in a
// multipart form (part "profile", optional "sample_type_config" JSON) or as
// the raw body. Every profile is parsed with github.com/google/pprof/profile;
// an upload that does not parse is answered 400 and fails the test at
// cleanup.
type Pyroscope struct {
	URL string

	t    testing.TB
	srv  *httptest.Server
	user string
	pass string

	mu       sync.Mutex
	closed   bool
	uploads  []PyroscopeUpload
	problems []string
	mode     PyroscopeMode
	release  chan struct{} // closed to free requests held by PyroscopeHang
	changed  chan struct{} // closed and replaced on every accepted upload
}

// PyroscopeMode is how the receiver answers.
type PyroscopeMode int

const (
	PyroscopeUp      PyroscopeMode = iota // 200 for valid uploads
	PyroscopeHang                         // accepts the request and never answers (a blackhole)
	PyroscopeFailing                      // 503 for every upload
)

// PyroscopeUpload is one accepted upload.
type PyroscopeUpload struct {
	App              string            // the application name, without tags
	Tags             map[string]string // from name={…}
	From, Until      time.Time
	SpyName          string
	SampleRate       int
	Units            string
	AggregationType  string
	SampleTypeConfig map[string]PyroscopeSampleType
	Multipart        bool
	User             string // basic auth user
	Profile          *profile.Profile
}

// PyroscopeSampleType is an entry of the sample_type_config part.
type PyroscopeSampleType struct {
	Units       string `json:"units,omitempty"`
	Aggregation string `json:"aggregation,omitempty"`
	DisplayName string `json:"display-name,omitempty"`
	Sampled     bool   `json:"sampled,omitempty"`
	Cumulative  bool   `json:"cumulative,omitempty"`
}

// HasSampleType reports whether the profile has a sample type of that name
// ("cpu", "alloc_space", "inuse_objects", "goroutine", "contentions"…).
func (u PyroscopeUpload) HasSampleType(name string) bool {
	for _, st := range u.Profile.SampleType {
		if st.Type == name {
			return true
		}
	}
	return false
}

// IsCPU reports a CPU profile upload.
func (u PyroscopeUpload) IsCPU() bool { return u.HasSampleType("cpu") }

// PyroscopeOption configures StartPyroscope.
type PyroscopeOption func(*Pyroscope)

// WithPyroscopeBasicAuth makes the receiver require HTTP basic auth (401
// otherwise, as Pyroscope behind an authenticating proxy does).
func WithPyroscopeBasicAuth(user, password string) PyroscopeOption {
	return func(p *Pyroscope) { p.user, p.pass = user, password }
}

// StartPyroscope starts a receiver on 127.0.0.1; it stops at the test's end.
func StartPyroscope(t testing.TB, opts ...PyroscopeOption) *Pyroscope {
	t.Helper()
	p := &Pyroscope{t: t, release: make(chan struct{}), changed: make(chan struct{})}
	for _, o := range opts {
		o(p)
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	t.Cleanup(p.Close)
	return p
}

// Close frees held requests, stops the receiver and reports, as test
// errors, every upload that did not parse.
func (p *Pyroscope) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	srv := p.srv
	p.mode = PyroscopeUp
	close(p.release)
	problems := slices.Clone(p.problems)
	p.mu.Unlock()
	srv.CloseClientConnections()
	srv.Close()
	for _, pr := range problems {
		p.t.Errorf("pyroscope receiver: %s", pr)
	}
}

// SetMode changes how the receiver answers from now on; leaving
// PyroscopeHang frees the requests it holds.
func (p *Pyroscope) SetMode(m PyroscopeMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.mode == PyroscopeHang && m != PyroscopeHang {
		close(p.release)
		p.release = make(chan struct{})
	}
	p.mode = m
}

// Uploads returns the accepted uploads so far.
func (p *Pyroscope) Uploads() []PyroscopeUpload {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.uploads)
}

// Problems returns the uploads rejected as malformed so far.
func (p *Pyroscope) Problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.problems)
}

// WaitFor waits until ok holds for the uploads received so far, and returns
// them; past the timeout it fails the test with what was received.
func (p *Pyroscope) WaitFor(t testing.TB, timeout time.Duration, what string, ok func([]PyroscopeUpload) bool) []PyroscopeUpload {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		ups, changed := slices.Clone(p.uploads), p.changed
		p.mu.Unlock()
		if ok(ups) {
			return ups
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("pyroscope receiver: no %s within %s; received %d uploads: %s", what, timeout, len(ups), summarize(ups))
			return nil
		}
	}
}

func summarize(ups []PyroscopeUpload) string {
	var b strings.Builder
	for i, u := range ups {
		if i == 10 {
			fmt.Fprintf(&b, " …")
			break
		}
		var types []string
		for _, st := range u.Profile.SampleType {
			types = append(types, st.Type)
		}
		fmt.Fprintf(&b, "[%s %v %v] ", u.App, u.Tags, types)
	}
	return b.String()
}

func (p *Pyroscope) problem(w http.ResponseWriter, code int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.mu.Lock()
	p.problems = append(p.problems, msg)
	p.mu.Unlock()
	http.Error(w, msg, code)
}

func (p *Pyroscope) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/ingest" {
		p.problem(w, http.StatusNotFound, "unexpected request %s %s", r.Method, r.URL.Path)
		return
	}
	p.mu.Lock()
	mode, release := p.mode, p.release
	p.mu.Unlock()
	switch mode {
	case PyroscopeHang:
		select {
		case <-release:
		case <-r.Context().Done():
		}
		// Held requests are never taken in: the client sees a failure if
		// it is still waiting.
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	case PyroscopeFailing:
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	user, pass, _ := r.BasicAuth()
	if p.user != "" && (user != p.user || pass != p.pass) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	up, err := parseIngest(r)
	if err != nil {
		p.problem(w, http.StatusBadRequest, "%s: %v", r.URL.RequestURI(), err)
		return
	}
	up.User = user
	p.mu.Lock()
	p.uploads = append(p.uploads, up)
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func parseIngest(r *http.Request) (PyroscopeUpload, error) {
	q := r.URL.Query()
	var up PyroscopeUpload
	var err error
	up.App, up.Tags, err = parseAppName(q.Get("name"))
	if err != nil {
		return up, err
	}
	if up.From, err = parseIngestTime(q.Get("from")); err != nil {
		return up, fmt.Errorf("from: %w", err)
	}
	if up.Until, err = parseIngestTime(q.Get("until")); err != nil {
		return up, fmt.Errorf("until: %w", err)
	}
	if up.Until.Before(up.From) {
		return up, fmt.Errorf("until %s is before from %s", up.Until, up.From)
	}
	up.SpyName = q.Get("spyName")
	if v := q.Get("sampleRate"); v != "" {
		if up.SampleRate, err = strconv.Atoi(v); err != nil || up.SampleRate < 0 {
			return up, fmt.Errorf("sampleRate %q", v)
		}
	}
	up.Units = q.Get("units")
	up.AggregationType = q.Get("aggregationType")
	if f := q.Get("format"); f != "" && f != "pprof" {
		return up, fmt.Errorf("format %q: only pprof is understood here", f)
	}

	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 64<<20))
	if err != nil {
		return up, err
	}
	raw := body
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		up.Multipart = true
		raw = nil
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return up, fmt.Errorf("multipart: %w", err)
			}
			b, err := io.ReadAll(part)
			if err != nil {
				return up, fmt.Errorf("multipart part %q: %w", part.FormName(), err)
			}
			switch part.FormName() {
			case "profile":
				raw = b
			case "sample_type_config":
				if err := json.Unmarshal(b, &up.SampleTypeConfig); err != nil {
					return up, fmt.Errorf("sample_type_config: %w", err)
				}
			case "prev_profile":
			default:
				return up, fmt.Errorf("unexpected multipart part %q", part.FormName())
			}
		}
		if raw == nil {
			return up, errors.New(`multipart body without a "profile" part`)
		}
	}
	if up.Profile, err = profile.ParseData(raw); err != nil {
		return up, fmt.Errorf("profile does not parse: %w", err)
	}
	if err := up.Profile.CheckValid(); err != nil {
		return up, fmt.Errorf("profile is not valid: %w", err)
	}
	for st := range up.SampleTypeConfig {
		if !up.HasSampleType(st) {
			return up, fmt.Errorf("sample_type_config names %q, which the profile does not have", st)
		}
	}
	return up, nil
}

// parseAppName parses Pyroscope's "app.name{key=value,…}".
func parseAppName(s string) (string, map[string]string, error) {
	app, rest, hasTags := strings.Cut(s, "{")
	app = strings.TrimSpace(app)
	if app == "" {
		return "", nil, fmt.Errorf("name %q has no application name", s)
	}
	for _, r := range app {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.-/", r)) {
			return "", nil, fmt.Errorf("application name %q: character %q is not allowed", app, r)
		}
	}
	tags := map[string]string{}
	if !hasTags {
		return app, tags, nil
	}
	body, ok := strings.CutSuffix(rest, "}")
	if !ok || strings.ContainsAny(body, "{}") {
		return "", nil, fmt.Errorf("name %q: malformed tags", s)
	}
	for _, kv := range strings.Split(body, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return "", nil, fmt.Errorf("name %q: tag %q is not key=value", s, kv)
		}
		tags[k] = strings.TrimSpace(v)
	}
	return app, tags, nil
}

// parseIngestTime reads from/until: a Unix time in seconds, milliseconds,
// microseconds or nanoseconds, told apart by magnitude as Pyroscope does.
func parseIngestTime(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, fmt.Errorf("%q is not a Unix time", s)
	}
	switch {
	case n < 1e11:
		return time.Unix(n, 0), nil
	case n < 1e14:
		return time.UnixMilli(n), nil
	case n < 1e17:
		return time.UnixMicro(n), nil
	}
	return time.Unix(0, n), nil
}
