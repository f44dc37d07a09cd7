package testbackend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const prometheusHowTo = "apt-get update && apt-get install -y prometheus (installs /usr/bin/prometheus and /usr/bin/promtool)"

// lookTool finds a Prometheus tool on PATH or where Debian installs it.
func lookTool(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	p := filepath.Join("/usr/bin", name)
	if _, err := os.Stat(p); err == nil {
		return p, true
	}
	return "", false
}

// ScrapeTarget is one job Prometheus scrapes at /metrics.
type ScrapeTarget struct {
	Job  string // job label
	Addr string // host:port
}

// PrometheusOptions configures StartPrometheus.
type PrometheusOptions struct {
	Targets        []ScrapeTarget
	ScrapeInterval time.Duration // default 1s; also the rule evaluation interval
	RuleFiles      []string      // rule files to load (paths)
}

// Prometheus is a real Prometheus server a test started on 127.0.0.1, with
// exemplar storage and native histograms on. It stops when the test ends.
type Prometheus struct {
	URL string // http://127.0.0.1:PORT

	client *http.Client
	logs   *LockedBuffer
}

// StartPrometheus starts Prometheus scraping opts.Targets and waits until it
// is ready. A missing binary is a skip on a laptop and a failure in CI.
func StartPrometheus(t testing.TB, opts PrometheusOptions) *Prometheus {
	t.Helper()
	bin, ok := lookTool("prometheus")
	if !ok {
		Missing(t, "Prometheus", prometheusHowTo)
	}
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = time.Second
	}
	dir := t.TempDir()
	var cfg strings.Builder
	iv := opts.ScrapeInterval.String()
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n", iv, iv)
	if len(opts.RuleFiles) > 0 {
		cfg.WriteString("rule_files:\n")
		for _, f := range opts.RuleFiles {
			fmt.Fprintf(&cfg, "  - %q\n", f)
		}
	}
	cfg.WriteString("scrape_configs:\n")
	for _, tg := range opts.Targets {
		fmt.Fprintf(&cfg, "  - job_name: %q\n    scrape_interval: %s\n    scrape_timeout: %s\n    static_configs:\n      - targets: [%q]\n",
			tg.Job, iv, (opts.ScrapeInterval * 9 / 10).String(), tg.Addr)
	}
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	p := &Prometheus{
		URL:    "http://127.0.0.1:" + strconv.Itoa(port),
		client: &http.Client{Timeout: 10 * time.Second},
		logs:   &LockedBuffer{Max: 1 << 20},
	}
	cmd := exec.Command(bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--enable-feature=exemplar-storage,native-histograms",
		"--log.level=warn",
	)
	launch(t, "prometheus", cmd, p.logs, prometheusHowTo, func() bool {
		resp, err := p.client.Get(p.URL + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// Sample is one element of an instant vector.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query runs an instant PromQL query and returns its vector (a scalar comes
// back as one sample without labels).
func (p *Prometheus) Query(ctx context.Context, promql string) ([]Sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.api(ctx, "/api/v1/query", url.Values{"query": {promql}}, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var raw []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return nil, err
		}
		out := make([]Sample, 0, len(raw))
		for _, r := range raw {
			v, err := sampleValue(r.Value[1])
			if err != nil {
				return nil, err
			}
			out = append(out, Sample{Metric: r.Metric, Value: v})
		}
		return out, nil
	case "scalar":
		var raw [2]any
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return nil, err
		}
		v, err := sampleValue(raw[1])
		if err != nil {
			return nil, err
		}
		return []Sample{{Value: v}}, nil
	}
	return nil, fmt.Errorf("query %q: unexpected result type %q", promql, data.ResultType)
}

func sampleValue(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v)
	}
	return strconv.ParseFloat(s, 64)
}

// Exemplar is one exemplar from /api/v1/query_exemplars.
type Exemplar struct {
	Series map[string]string // the series it belongs to
	Labels map[string]string // trace_id, span_id
	Value  float64
}

// QueryExemplars returns the exemplars of the series query selects between
// start and end.
func (p *Prometheus) QueryExemplars(ctx context.Context, query string, start, end time.Time) ([]Exemplar, error) {
	var data []struct {
		SeriesLabels map[string]string `json:"seriesLabels"`
		Exemplars    []struct {
			Labels map[string]string `json:"labels"`
			Value  string            `json:"value"`
		} `json:"exemplars"`
	}
	q := url.Values{
		"query": {query},
		"start": {strconv.FormatFloat(float64(start.UnixMilli())/1000, 'f', 3, 64)},
		"end":   {strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', 3, 64)},
	}
	if err := p.api(ctx, "/api/v1/query_exemplars", q, &data); err != nil {
		return nil, err
	}
	var out []Exemplar
	for _, s := range data {
		for _, e := range s.Exemplars {
			v, _ := strconv.ParseFloat(e.Value, 64)
			out = append(out, Exemplar{Series: s.SeriesLabels, Labels: e.Labels, Value: v})
		}
	}
	return out, nil
}

func (p *Prometheus) api(ctx context.Context, path string, q url.Values, data any) error {
	req, err := http.NewRequestWithContext(ctx, "POST", p.URL+path, strings.NewReader(q.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s %v: %s", path, q, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// Eventually polls query every 250ms until ok accepts its result or timeout
// passes; it returns the last result and whether ok accepted it.
func (p *Prometheus) Eventually(ctx context.Context, timeout time.Duration, query string, ok func([]Sample) bool) ([]Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		last    []Sample
		lastErr error
	)
	for {
		last, lastErr = p.Query(ctx, query)
		if lastErr == nil && ok(last) {
			return last, nil
		}
		select {
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = errors.New("condition not met")
			}
			return last, fmt.Errorf("%s: after %s: %w (last result %v)", query, timeout, lastErr, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// CheckMetrics runs `promtool check metrics` on an exposition in the text
// format and returns what promtool says and whether it passed. A missing
// promtool is a skip on a laptop and a failure in CI.
func CheckMetrics(t testing.TB, exposition []byte) (string, bool) {
	t.Helper()
	bin, ok := lookTool("promtool")
	if !ok {
		Missing(t, "promtool", prometheusHowTo)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("promtool: %v", err)
	}
	return string(out), err == nil
}
