// Package spec reads and validates the SLO spec of cmd/observe: a small,
// strict YAML document naming a service and its SLOs. Every problem is
// reported with its line, all at once, so one `observe check` run explains
// everything that is wrong.
package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/observekit/observe/metrics"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Protocols an SLO can measure.
const (
	HTTP = "http"
	GRPC = "grpc"
)

// Spec is a validated SLO spec.
type Spec struct {
	Service string // service.name
	Job     string // value of the job label of the service's series (default: Service)
	// Window is the SLO period (default 30d), whole days.
	Window time.Duration
	// Buckets are the duration histogram's bounds in seconds
	// (default metrics.DefaultDurationBuckets).
	Buckets []float64
	// CustomBuckets is true when the spec lists its own buckets.
	CustomBuckets bool
	RunbookURL    *template.Template // executed with URLData
	DashboardURL  *template.Template // executed with URLData
	// TracesDatasource is the plugin type of the dashboard's traces
	// datasource variable (default "tempo").
	TracesDatasource string
	SLOs             []SLO
}

// SLO is one objective of a Spec.
type SLO struct {
	Name        string
	Description string
	Objective   float64 // percent, in (0,100)
	Protocol    string  // HTTP or GRPC
	Routes      []string
	RPCMethods  []string
	// Latency, when not zero, makes this a latency SLO: the share of
	// requests answered within Latency, a bound of Spec.Buckets.
	Latency time.Duration
	// LatencyBound is Latency in seconds, exactly as the bucket bound.
	LatencyBound float64
	Line         int // where the SLO starts in the spec
}

// URLData is what runbook_url and dashboard_url templates are executed with.
type URLData struct {
	Service  string
	SLO      string
	Severity string // "page", "ticket", or "" for the absent-metric alert
	UID      string // the generated dashboard's uid
}

// DefaultRunbookURL is the runbook_url template used when the spec sets none.
const DefaultRunbookURL = "https://github.com/observekit/observe/blob/main/README.md#when-an-slo-alert-fires"

// DefaultDashboardURL is the dashboard_url template used when the spec sets
// none: a path on the Grafana that imported the generated dashboard.
const DefaultDashboardURL = "/d/{{.UID}}"

// Ratio is the objective as a ratio (99.9 → 0.999).
func (s SLO) Ratio() float64 { return round12(s.Objective / 100) }

// Budget is the error budget as a ratio (99.9 → 0.001).
func (s SLO) Budget() float64 { return round12((100 - s.Objective) / 100) }

// round12 rounds to 12 significant digits: 1-0.999 is 0.001, not
// 0.0010000000000000009, in the generated rules.
func round12(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 12, 64), 64)
	return v
}

// DashboardUID is the uid of the service's generated dashboard.
func (s *Spec) DashboardUID() string {
	var b strings.Builder
	b.WriteString("observe-")
	for _, r := range strings.ToLower(s.Service) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	uid := b.String()
	if len(uid) > 40 { // Grafana's limit
		uid = uid[:40]
	}
	return uid
}

// Problem is one thing wrong with a spec, at a line (0: the whole file).
type Problem struct {
	Line, Column int
	Msg          string
}

// Problems is every problem found in a spec; it is the error Parse returns.
type Problems struct {
	File string
	List []Problem
}

func (p *Problems) Error() string {
	var b strings.Builder
	for i, q := range p.List {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.File)
		if q.Line > 0 {
			fmt.Fprintf(&b, ":%d", q.Line)
			if q.Column > 0 {
				fmt.Fprintf(&b, ":%d", q.Column)
			}
		}
		b.WriteString(": ")
		b.WriteString(q.Msg)
	}
	return b.String()
}

type parser struct {
	probs []Problem
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	q := Problem{Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		q.Line, q.Column = n.Line, n.Column
	}
	p.probs = append(p.probs, q)
}

var (
	sloName   = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]*$`)
	rpcMethod = regexp.MustCompile(`^[a-zA-Z0-9_.]+/[a-zA-Z0-9_.]+$`)
)

const maxSpecBytes = 1 << 20

// Parse reads a spec; file names it in errors. The error, when not nil, is
// a *Problems listing every problem with its line.
func Parse(file string, data []byte) (*Spec, error) {
	p := &parser{}
	s := p.parse(data)
	if len(p.probs) > 0 {
		slices.SortStableFunc(p.probs, func(a, b Problem) int { return a.Line - b.Line })
		return nil, &Problems{File: file, List: p.probs}
	}
	return s, nil
}

func (p *parser) parse(data []byte) *Spec {
	if len(data) > maxSpecBytes {
		p.errorf(nil, "the spec is larger than %d bytes", maxSpecBytes)
		return nil
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		p.errorf(nil, "empty spec: want a mapping with service and slos")
		return nil
	} else if err != nil {
		p.yamlError(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errorf(&extra, "a second YAML document: the spec is one document")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		p.errorf(&doc, "empty spec: want a mapping with service and slos")
		return nil
	}
	root := doc.Content[0]
	s := &Spec{Window: 30 * 24 * time.Hour, Buckets: metrics.DefaultDurationBuckets, TracesDatasource: "tempo"}
	runbook, dashboard := DefaultRunbookURL, DefaultDashboardURL
	var runbookNode, dashboardNode, sloNodes, bucketsNode *yaml.Node
	fields := p.mapping(root, "the spec", map[string]bool{"service": true, "slos": true},
		"service", "job", "window", "buckets", "runbook_url", "dashboard_url", "traces_datasource", "slos")
	if fields == nil {
		return nil
	}
	if n := fields["service"]; n != nil {
		s.Service = p.str(n, "service", true)
	}
	s.Job = s.Service
	if n := fields["job"]; n != nil {
		s.Job = p.str(n, "job", true)
	}
	if n := fields["window"]; n != nil {
		s.Window = p.window(n)
	}
	if n := fields["buckets"]; n != nil {
		bucketsNode = n
		s.Buckets = p.buckets(n)
		s.CustomBuckets = true
	}
	if n := fields["runbook_url"]; n != nil {
		runbook, runbookNode = p.str(n, "runbook_url", true), n
	}
	if n := fields["dashboard_url"]; n != nil {
		dashboard, dashboardNode = p.str(n, "dashboard_url", true), n
	}
	if n := fields["traces_datasource"]; n != nil {
		s.TracesDatasource = p.str(n, "traces_datasource", true)
		if s.TracesDatasource != "" && !sloName.MatchString(s.TracesDatasource) {
			p.errorf(n, "traces_datasource: %q is not a Grafana plugin id (tempo, jaeger, zipkin, …)", s.TracesDatasource)
		}
	}
	s.RunbookURL = p.urlTemplate(runbookNode, "runbook_url", runbook, s)
	s.DashboardURL = p.urlTemplate(dashboardNode, "dashboard_url", dashboard, s)
	sloNodes = fields["slos"]
	if sloNodes != nil {
		if sloNodes.Kind != yaml.SequenceNode {
			p.errorf(sloNodes, "slos: want a list of SLOs")
		} else if len(sloNodes.Content) == 0 {
			p.errorf(sloNodes, "slos: the list is empty: name at least one SLO")
		}
		seen := map[string]int{}
		for i, n := range sloNodes.Content {
			slo, ok := p.slo(n, i, s, bucketsNode)
			if !ok {
				continue
			}
			if prev, dup := seen[slo.Name]; dup {
				p.errorf(n, "slos[%d].name: %q is already the name of the SLO on line %d", i, slo.Name, prev)
				continue
			}
			seen[slo.Name] = slo.Line
			s.SLOs = append(s.SLOs, slo)
		}
	}
	return s
}

// yamlError turns a yaml.v3 error ("yaml: line 3: …") into a problem with
// its line.
func (p *parser) yamlError(err error) {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		q := Problem{Msg: "not valid YAML: " + m}
		if rest, ok := strings.CutPrefix(m, "line "); ok {
			if i := strings.IndexByte(rest, ':'); i > 0 {
				if l, err := strconv.Atoi(rest[:i]); err == nil {
					q.Line, q.Msg = l, "not valid YAML:"+rest[i+1:]
				}
			}
		}
		p.probs = append(p.probs, q)
	}
}

// mapping checks that n is a mapping whose keys are all in allowed (in the
// order given, for the error message) and returns the value node by key.
func (p *parser) mapping(n *yaml.Node, what string, required map[string]bool, allowed ...string) map[string]*yaml.Node {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: want a mapping of %s", what, strings.Join(allowed, ", "))
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "%s: a key must be a plain name", what)
			continue
		}
		if !slices.Contains(allowed, k.Value) {
			p.errorf(k, "%s: unknown key %q (known: %s)", what, k.Value, strings.Join(allowed, ", "))
			continue
		}
		if _, dup := out[k.Value]; dup {
			p.errorf(k, "%s: %s is set twice", what, k.Value)
			continue
		}
		out[k.Value] = deref(v)
	}
	for _, k := range allowed {
		if required[k] && out[k] == nil {
			p.errorf(n, "%s: %s is required", what, k)
		}
	}
	return out
}

// deref follows a YAML alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for d := 0; n.Kind == yaml.AliasNode && n.Alias != nil && d < 16; d++ {
		n = n.Alias
	}
	return n
}

func (p *parser) str(n *yaml.Node, what string, nonEmpty bool) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "%s: want a string", what)
		return ""
	}
	v := strings.TrimSpace(n.Value)
	if nonEmpty && v == "" {
		p.errorf(n, "%s: must not be empty", what)
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		p.errorf(n, "%s: control characters are not allowed", what)
	}
	return v
}

func (p *parser) window(n *yaml.Node) time.Duration {
	v := p.str(n, "window", true)
	if v == "" {
		return 30 * 24 * time.Hour
	}
	d, err := model.ParseDuration(v)
	day := model.Duration(24 * time.Hour)
	switch {
	case err != nil:
		p.errorf(n, "window: %q is not a duration (30d, 4w, 28d)", v)
	case d%day != 0:
		p.errorf(n, "window: %s is not a whole number of days", v)
	case d < 7*day || d > 366*day:
		p.errorf(n, "window: %s is outside 7d…366d (the burn-rate alerts look back up to 3d)", v)
	default:
		return time.Duration(d)
	}
	return 30 * 24 * time.Hour
}

// buckets reads a list of bounds: numbers (seconds) or Go durations.
func (p *parser) buckets(n *yaml.Node) []float64 {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errorf(n, "buckets: want a non-empty list of bounds in seconds (0.25) or durations (250ms), as given to observe.WithDurationBuckets")
		return metrics.DefaultDurationBuckets
	}
	out := make([]float64, 0, len(n.Content))
	for i, e := range n.Content {
		e = deref(e)
		b, ok := p.seconds(e, fmt.Sprintf("buckets[%d]", i))
		if !ok {
			continue
		}
		if len(out) > 0 && b <= out[len(out)-1] {
			p.errorf(e, "buckets[%d]: %s is not above the previous bound %s: bounds must increase", i, fmtSeconds(b), fmtSeconds(out[len(out)-1]))
			continue
		}
		out = append(out, b)
	}
	return out
}

func (p *parser) seconds(e *yaml.Node, what string) (float64, bool) {
	if e.Kind != yaml.ScalarNode {
		p.errorf(e, "%s: want a number of seconds or a duration", what)
		return 0, false
	}
	var b float64
	if f, err := strconv.ParseFloat(e.Value, 64); err == nil && e.Tag != "!!str" {
		b = f
	} else if d, err := time.ParseDuration(e.Value); err == nil {
		b = d.Seconds()
	} else {
		p.errorf(e, "%s: %q is neither a number of seconds nor a duration (250ms)", what, e.Value)
		return 0, false
	}
	if math.IsNaN(b) || math.IsInf(b, 0) || b <= 0 {
		p.errorf(e, "%s: %s must be a positive, finite number of seconds", what, e.Value)
		return 0, false
	}
	return b, true
}

func (p *parser) urlTemplate(n *yaml.Node, what, text string, s *Spec) *template.Template {
	t, err := template.New(what).Option("missingkey=error").Parse(text)
	if err == nil {
		err = t.Execute(new(strings.Builder), URLData{Service: s.Service, SLO: "slo", Severity: "page", UID: "uid"})
	}
	if err != nil {
		p.errorf(n, "%s: %v (fields: {{.Service}}, {{.SLO}}, {{.Severity}}, {{.UID}})", what, err)
		return template.Must(template.New(what).Parse(""))
	}
	return t
}

func (p *parser) slo(n *yaml.Node, i int, s *Spec, bucketsNode *yaml.Node) (SLO, bool) {
	at := fmt.Sprintf("slos[%d]", i)
	slo := SLO{Line: n.Line, Protocol: HTTP}
	if n = deref(n); n.Kind == yaml.MappingNode {
		// Name the SLO in every message, even those about other keys.
		for j := 0; j+1 < len(n.Content); j += 2 {
			if k, v := n.Content[j], deref(n.Content[j+1]); k.Value == "name" && v.Kind == yaml.ScalarNode && sloName.MatchString(v.Value) {
				at = fmt.Sprintf("slos[%d] (%s)", i, v.Value)
			}
		}
	}
	fields := p.mapping(n, at, map[string]bool{"name": true, "objective": true},
		"name", "description", "objective", "protocol", "routes", "rpc_methods", "latency")
	if fields == nil {
		return slo, false
	}
	before := len(p.probs)
	if v := fields["name"]; v != nil {
		slo.Name = p.str(v, at+".name", true)
		if slo.Name != "" && !sloName.MatchString(slo.Name) {
			p.errorf(v, "%s.name: %q: use letters, digits, '-' and '_' (it names recording rules and alerts)", at, slo.Name)
		}
	}
	if v := fields["description"]; v != nil {
		slo.Description = p.str(v, at+".description", false)
	}
	if v := fields["objective"]; v != nil {
		f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v.Value), "%"), 64)
		switch {
		case v.Kind != yaml.ScalarNode || err != nil:
			p.errorf(v, "%s.objective: want a percentage such as 99.9", at)
		case !(f > 0 && f < 100):
			p.errorf(v, "%s.objective: %s is outside (0, 100): it is a percentage (99.9 means 99.9%%)", at, v.Value)
		default:
			slo.Objective = f
		}
	}
	if v := fields["protocol"]; v != nil {
		slo.Protocol = p.str(v, at+".protocol", true)
		if slo.Protocol != HTTP && slo.Protocol != GRPC {
			p.errorf(v, "%s.protocol: %q: want http or grpc", at, slo.Protocol)
		}
	}
	if v := fields["routes"]; v != nil {
		slo.Routes = p.list(v, at+".routes", "HTTP route templates such as /orders/{id}", func(e *yaml.Node, what, s string) {
			if !strings.HasPrefix(s, "/") {
				p.errorf(e, "%s: %q is not a route template: it starts with / (as http_route does, /orders/{id})", what, s)
			}
		})
	}
	if v := fields["rpc_methods"]; v != nil {
		slo.RPCMethods = p.list(v, at+".rpc_methods", "gRPC methods such as shop.Checkout/PlaceOrder", func(e *yaml.Node, what, s string) {
			if !rpcMethod.MatchString(s) {
				p.errorf(e, "%s: %q is not a gRPC method: want pkg.Service/Method, as rpc_method is recorded", what, s)
			}
		})
		if fields["protocol"] == nil {
			slo.Protocol = GRPC
		} else if slo.Protocol == HTTP {
			p.errorf(v, "%s.rpc_methods: set on an http SLO: use routes, or protocol: grpc", at)
		}
	}
	if v := fields["routes"]; v != nil && slo.Protocol == GRPC {
		p.errorf(v, "%s.routes: set on a grpc SLO: use rpc_methods", at)
	}
	if v := fields["latency"]; v != nil {
		p.latency(v, at, &slo, s, bucketsNode)
	}
	return slo, len(p.probs) == before
}

func (p *parser) list(n *yaml.Node, what, want string, check func(e *yaml.Node, what, s string)) []string {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s: want a list of %s", what, want)
		return nil
	}
	if len(n.Content) == 0 {
		p.errorf(n, "%s: the list is empty: leave the key out to cover every one, or list %s", what, want)
		return nil
	}
	var out []string
	for i, e := range n.Content {
		e = deref(e)
		w := fmt.Sprintf("%s[%d]", what, i)
		s := p.str(e, w, true)
		if s == "" {
			continue
		}
		if slices.Contains(out, s) {
			p.errorf(e, "%s: %q is listed twice", w, s)
			continue
		}
		check(e, w, s)
		out = append(out, s)
	}
	return out
}

func (p *parser) latency(v *yaml.Node, at string, slo *SLO, s *Spec, bucketsNode *yaml.Node) {
	text := p.str(v, at+".latency", true)
	if text == "" {
		return
	}
	d, err := time.ParseDuration(text)
	if err != nil || d <= 0 {
		p.errorf(v, "%s.latency: %q is not a positive duration (250ms, 1s)", at, text)
		return
	}
	slo.Latency = d
	sec := d.Seconds()
	for _, b := range s.Buckets {
		if math.Abs(b-sec) <= 1e-9*math.Max(1, b) {
			slo.LatencyBound = b
			return
		}
	}
	var lo, hi float64 = -1, -1
	for _, b := range s.Buckets {
		if b < sec {
			lo = b
		} else if hi < 0 {
			hi = b
		}
	}
	var near string
	switch {
	case lo >= 0 && hi >= 0:
		near = fmt.Sprintf("the nearest bounds are %s and %s", fmtSeconds(lo), fmtSeconds(hi))
	case lo >= 0:
		near = fmt.Sprintf("the largest bound is %s", fmtSeconds(lo))
	default:
		near = fmt.Sprintf("the smallest bound is %s", fmtSeconds(hi))
	}
	which := "the default buckets (metrics.DefaultDurationBuckets)"
	if bucketsNode != nil {
		which = fmt.Sprintf("the buckets listed on line %d", bucketsNode.Line)
	}
	p.errorf(v, "%s.latency: %s is not a bucket bound of %s, so the SLO could not count requests against it; %s. "+
		"Use one of them, or give the service a bound at %s with observe.WithDurationBuckets(…, %s, …) and list the same bounds under buckets: in this spec",
		at, text, which, near, text, strconv.FormatFloat(sec, 'g', -1, 64))
}

// fmtSeconds writes a bound in seconds as a short duration (0.25 → 250ms).
func fmtSeconds(b float64) string {
	d := time.Duration(math.Round(b * float64(time.Second)))
	if d > 0 && math.Abs(d.Seconds()-b) < 1e-12 {
		return d.String()
	}
	return strconv.FormatFloat(b, 'g', -1, 64) + "s"
}
