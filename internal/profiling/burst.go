package profiling

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Burst is a short profile taken on demand (observe takes one when an
// anomaly starts): the CPU for a few seconds, then the goroutines.
type Burst struct {
	Labels     map[string]string // what it is about (anomaly_kind, anomaly_route…)
	Start, End time.Time
	CPU        []byte // pprof protobuf (gzipped); nil when CPUErr is set
	CPUErr     string // why there is no CPU profile (another one running, say)
	Goroutines []byte // pprof protobuf (gzipped)
	Pushed     int    // profiles the Pyroscope server accepted (0, 1 or 2)
}

// pushTarget is where Start pushes, kept for bursts.
type pushTarget struct {
	addr, app  string
	tags       map[string]string
	user, pass string
}

// TakeBurst profiles the CPU for d (whole seconds, at least one, as the
// pprof endpoint counts them; ctx ends it early) and then takes a goroutine
// profile. It works while continuous profiling runs: the CPU window is cut
// from the running collection. When profiles are pushed, both are uploaded
// to the Pyroscope server as <app>.cpu and <app>.goroutines with the
// service's tags and labels (invalid characters replaced), counted like
// continuous uploads. It is safe on a nil *Profiler (nothing is pushed).
func (p *Profiler) TakeBurst(ctx context.Context, d time.Duration, labels map[string]string) Burst {
	secs := max(int64((d+time.Second-1)/time.Second), 1)
	b := Burst{Labels: labels, Start: time.Now()}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/debug/pprof/profile?seconds="+strconv.FormatInt(secs, 10), nil)
	rec := &bufferWriter{code: http.StatusOK, h: http.Header{}}
	CPUProfileHandler().ServeHTTP(rec, req)
	if rec.code == http.StatusOK && rec.buf.Len() > 0 {
		b.CPU = rec.buf.Bytes()
	} else {
		b.CPUErr = strings.TrimSpace(rec.buf.String())
		if b.CPUErr == "" {
			b.CPUErr = fmt.Sprintf("status %d", rec.code)
		}
	}
	b.End = time.Now()
	var g bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&g, 0); err == nil {
		b.Goroutines = g.Bytes()
	}
	if p == nil || p.target == nil || p.uploads == nil || ctx.Err() != nil {
		return b // not pushing, or shutting down (the uploader is stopping)
	}
	for _, prof := range []struct {
		typ  string
		data []byte
	}{{"cpu", b.CPU}, {"goroutines", b.Goroutines}} {
		if prof.data == nil {
			continue
		}
		if err := p.pushBurst(prof.typ, prof.data, b); err == nil {
			b.Pushed++
		}
	}
	return b
}

func (p *Profiler) pushBurst(typ string, data []byte, b Burst) error {
	t := p.target
	tags := Tags(t.tags)
	for k, v := range Tags(b.Labels) {
		tags[k] = v
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var name strings.Builder
	name.WriteString(t.app + "." + typ + "{")
	for i, k := range keys {
		if i > 0 {
			name.WriteByte(',')
		}
		name.WriteString(k + "=" + tags[k])
	}
	name.WriteByte('}')
	u, err := url.Parse(t.addr)
	if err != nil {
		return err
	}
	u.Path = path.Join(u.Path, "ingest")
	q := url.Values{}
	q.Set("name", name.String())
	q.Set("from", strconv.FormatInt(b.Start.UnixNano(), 10))
	q.Set("until", strconv.FormatInt(b.End.UnixNano(), 10))
	q.Set("spyName", "gospy")
	if typ == "cpu" {
		q.Set("sampleRate", "100")
	}
	u.RawQuery = q.Encode()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("profile", "profile.pprof")
	if err != nil {
		return err
	}
	_, _ = fw.Write(data)
	if err := mw.Close(); err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, u.String(), &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if t.user != "" && t.pass != "" {
		req.SetBasicAuth(t.user, t.pass)
	}
	resp, err := p.uploads.Do(req) // counted with the continuous uploads
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// bufferWriter keeps what the CPU profile handler writes.
type bufferWriter struct {
	h    http.Header
	code int
	buf  bytes.Buffer
}

func (w *bufferWriter) Header() http.Header         { return w.h }
func (w *bufferWriter) Write(b []byte) (int, error) { return w.buf.Write(b) }
func (w *bufferWriter) WriteHeader(code int)        { w.code = code }
