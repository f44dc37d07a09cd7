package profiling

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// uploadClient is the HTTP client pyroscope-go uploads with: it counts what
// the server accepted and what failed, bounds every upload by a timeout, and
// can abort everything at once when Stop runs out of time.
type uploadClient struct {
	hc     *http.Client
	tr     *http.Transport
	ctx    context.Context
	cancel context.CancelFunc
	log    *uploadLog

	uploaded atomic.Uint64
	failed   atomic.Uint64

	cpuTee func(start, end time.Time, pprof []byte) // Config.CPUProfiles
}

func newUploadClient(timeout time.Duration, log *uploadLog) *uploadClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxConnsPerHost = 5 // pyroscope-go's number of upload goroutines
	ctx, cancel := context.WithCancel(context.Background())
	return &uploadClient{
		hc: &http.Client{
			Transport: tr,
			Timeout:   timeout,
			// As pyroscope-go's own client: a redirect would drop the
			// Authorization header and turn into a confusing 401.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		tr:     tr,
		ctx:    ctx,
		cancel: cancel,
		log:    log,
	}
}

// Do implements pyroscope-go's remote.HTTPClient.
func (c *uploadClient) Do(req *http.Request) (*http.Response, error) {
	req = req.WithContext(c.ctx)
	fixUntil(req, time.Now())
	if c.cpuTee != nil {
		teeCPU(req, c.cpuTee)
	}
	resp, err := c.hc.Do(req)
	switch {
	case err != nil:
		c.failed.Add(1)
	case resp.StatusCode != http.StatusOK: // what pyroscope-go takes for success
		c.failed.Add(1)
	default:
		c.uploaded.Add(1)
	}
	return resp, err
}

// fixUntil mends the time range of a flushed profile. pyroscope-go (v1.4)
// ends the period it flushes at the current time truncated to the upload
// interval, which is before the period's start when the flush comes soon
// after a periodic cut: the server would get until < from. The profile
// really covers up to now.
func fixUntil(req *http.Request, now time.Time) {
	q := req.URL.Query()
	from, err1 := strconv.ParseInt(q.Get("from"), 10, 64)
	until, err2 := strconv.ParseInt(q.Get("until"), 10, 64)
	if err1 != nil || err2 != nil || until >= from {
		return
	}
	q.Set("until", strconv.FormatInt(max(now.UnixNano(), from), 10))
	u := *req.URL
	u.RawQuery = q.Encode()
	req.URL = &u
}

// maxTeeBytes bounds what teeCPU reads of one profile.
const maxTeeBytes = 64 << 20

// teeCPU hands the CPU profile of a pyroscope-go upload to tee: the
// "profile" part of the multipart body of a request whose units are
// samples (pyroscope-go's CPU collector; other types and bursts carry
// other units or none). The body is read from a copy (GetBody), so the
// upload itself is untouched; anything unexpected is skipped.
func teeCPU(req *http.Request, tee func(start, end time.Time, pprof []byte)) {
	q := req.URL.Query()
	if q.Get("units") != "samples" || req.GetBody == nil {
		return
	}
	from, err1 := strconv.ParseInt(q.Get("from"), 10, 64)
	until, err2 := strconv.ParseInt(q.Get("until"), 10, 64)
	_, params, err3 := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err1 != nil || err2 != nil || err3 != nil || params["boundary"] == "" {
		return
	}
	body, err := req.GetBody()
	if err != nil {
		return
	}
	defer body.Close()
	mr := multipart.NewReader(body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			return
		}
		if part.FormName() == "profile" {
			data, err := io.ReadAll(io.LimitReader(part, maxTeeBytes))
			if err == nil && len(data) > 0 {
				tee(time.Unix(0, from), time.Unix(0, until), data)
			}
			return
		}
	}
}

// abort fails uploads in flight and every later one at once.
func (c *uploadClient) abort() { c.cancel() }

// close releases the client's connections once uploads are over.
func (c *uploadClient) close() {
	c.cancel()
	c.tr.CloseIdleConnections()
}

// queueFullMessage is how pyroscope-go (v1.4) reports a profile it dropped
// because its upload queue was full; it has no other signal for it.
const queueFullMessage = "remote upload queue is full"

// uploadLog adapts pyroscope-go's Logger: its chatter goes to debug, and
// its errors (failed uploads, mostly) to a WARN line at most once a minute,
// so that a Pyroscope outage cannot flood the service's logs.
type uploadLog struct {
	l         *slog.Logger // nil: discard
	queueFull atomic.Uint64

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const uploadWarnEvery = time.Minute

func newUploadLog(l *slog.Logger) *uploadLog { return &uploadLog{l: l} }

func (u *uploadLog) Debugf(format string, args ...any) { u.debug(format, args) }
func (u *uploadLog) Infof(format string, args ...any)  { u.debug(format, args) }

func (u *uploadLog) debug(format string, args []any) {
	if u.l != nil && u.l.Enabled(context.Background(), slog.LevelDebug) {
		u.l.Debug(fmt.Sprintf(format, args...))
	}
}

func (u *uploadLog) Errorf(format string, args ...any) {
	if strings.HasPrefix(format, queueFullMessage) {
		u.queueFull.Add(1)
	}
	if u.l == nil {
		return
	}
	u.mu.Lock()
	now := time.Now()
	if !u.last.IsZero() && now.Sub(u.last) < uploadWarnEvery {
		u.suppressed++
		u.mu.Unlock()
		return
	}
	suppressed := u.suppressed
	u.last, u.suppressed = now, 0
	u.mu.Unlock()
	u.l.Warn("profile upload failed; profiles are dropped until the Pyroscope server answers",
		slog.String("error", fmt.Sprintf(format, args...)),
		slog.Int("suppressed", suppressed))
}
