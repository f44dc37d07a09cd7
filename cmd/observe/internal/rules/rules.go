// Package rules generates Prometheus recording and alerting rules from an
// SLO spec: the multiwindow, multi-burn-rate alerts of the Google SRE
// workbook, over recording rules named the way sloth names them
// (slo:sli_error:ratio_rate5m{sloth_id, sloth_service, sloth_slo,
// sloth_window}, slo:period_error_budget_remaining:ratio, …) so dashboards
// written for sloth keep working.
package rules

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/observekit/observe/cmd/observe/internal/spec"
	"github.com/observekit/observe/metrics"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Metric names of the server duration histograms the SLIs are computed from.
const (
	httpDuration = metrics.HTTPServerDuration
	rpcDuration  = metrics.RPCServerDuration
)

// grpcServerErrors are the gRPC codes that count against availability: the
// server's fault, as the OpenTelemetry semantic conventions classify them.
const grpcServerErrors = "UNKNOWN|DEADLINE_EXCEEDED|UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS"

// BurnWindow is one multiwindow condition: the error ratio over both Long
// and Short above Factor times the error budget.
type BurnWindow struct {
	Long, Short time.Duration
	// BudgetShare is the share of the whole window's budget that burning at
	// this rate spends in Long; Factor follows from it and the SLO window.
	BudgetShare float64
}

// Factor is the burn rate that spends BudgetShare of the budget in Long:
// 14.4 for 2% in 1h of a 30d window.
func (b BurnWindow) Factor(window time.Duration) float64 {
	f := b.BudgetShare * float64(window) / float64(b.Long)
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 10, 64), 64)
	return v
}

// Page and Ticket are the SRE workbook's alerts (chapter 5, "Multiwindow,
// Multi-Burn-Rate Alerts"); for a 30d window their factors are 14.4 and 6,
// 3 and 1.
var (
	Page = []BurnWindow{
		{Long: time.Hour, Short: 5 * time.Minute, BudgetShare: 0.02},
		{Long: 6 * time.Hour, Short: 30 * time.Minute, BudgetShare: 0.05},
	}
	Ticket = []BurnWindow{
		{Long: 24 * time.Hour, Short: 2 * time.Hour, BudgetShare: 0.10},
		{Long: 72 * time.Hour, Short: 6 * time.Hour, BudgetShare: 0.10},
	}
)

// Windows are the error-ratio windows recorded for every SLO.
var Windows = []time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 24 * time.Hour, 72 * time.Hour}

// File is a Prometheus rule file.
type File struct {
	Groups []Group `yaml:"groups"`
}

// Group is a rule group.
type Group struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Rules    []Rule `yaml:"rules"`
}

// Rule is a recording or an alerting rule.
type Rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// Names of the recording rules, as sloth names them.
const (
	RecordObjective       = "slo:objective:ratio"
	RecordErrorBudget     = "slo:error_budget:ratio"
	RecordTimePeriodDays  = "slo:time_period:days"
	RecordCurrentBurnRate = "slo:current_burn_rate:ratio"
	RecordPeriodBurnRate  = "slo:period_burn_rate:ratio"
	RecordBudgetRemaining = "slo:period_error_budget_remaining:ratio"
	RecordInfo            = "sloth_slo_info"
)

// RecordErrorRatio is the name of the error-ratio recording rule over w
// (slo:sli_error:ratio_rate5m).
func RecordErrorRatio(w time.Duration) string { return "slo:sli_error:ratio_rate" + Window(w) }

// Window writes a window the Prometheus way, as sloth_window carries it
// (5m, 1h, 1d, 30d).
func Window(w time.Duration) string { return model.Duration(w).String() }

// ID is the sloth_id of an SLO: service-name.
func ID(s *spec.Spec, slo spec.SLO) string { return s.Service + "-" + slo.Name }

// Selector matches the series of one SLO's recording rules.
func Selector(s *spec.Spec, slo spec.SLO) string {
	return fmt.Sprintf("sloth_id=%s, sloth_service=%s, sloth_slo=%s", quote(ID(s, slo)), quote(s.Service), quote(slo.Name))
}

func sloLabels(s *spec.Spec, slo spec.SLO) map[string]string {
	return map[string]string{"sloth_id": ID(s, slo), "sloth_service": s.Service, "sloth_slo": slo.Name}
}

func round(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 12, 64), 64)
	return v
}

// quote writes a PromQL string literal.
func quote(s string) string { return strconv.Quote(s) }

// number writes a float the shortest way that reads back the same.
func number(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// SeriesSelector is the label matchers of an SLO's histogram series (no
// braces): job, and the routes or RPC methods it covers.
func SeriesSelector(s *spec.Spec, slo spec.SLO) string {
	m := []string{"job=" + quote(s.Job)}
	switch slo.Protocol {
	case spec.GRPC:
		m = append(m, `rpc_system_name="grpc"`)
		if len(slo.RPCMethods) > 0 {
			m = append(m, oneOf("rpc_method", slo.RPCMethods))
		}
	default:
		if len(slo.Routes) > 0 {
			m = append(m, oneOf("http_route", slo.Routes))
		}
	}
	return strings.Join(m, ",")
}

func oneOf(label string, values []string) string {
	if len(values) == 1 {
		return label + "=" + quote(values[0])
	}
	re := make([]string, len(values))
	for i, v := range values {
		re[i] = regexpQuoteMeta(v)
	}
	return label + "=~" + quote(strings.Join(re, "|"))
}

// regexpQuoteMeta escapes RE2 metacharacters.
func regexpQuoteMeta(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Metric is the histogram an SLO is computed from.
func Metric(slo spec.SLO) string {
	if slo.Protocol == spec.GRPC {
		return rpcDuration
	}
	return httpDuration
}

// LeMatcher matches a bucket bound's le label however the scrape wrote it:
// the text format writes 1, OpenMetrics (and Prometheus 3) 1.0.
func LeMatcher(bound float64) string {
	s := strconv.FormatFloat(bound, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		return "le=~" + quote(s+`|`+s+`\.0`)
	}
	return "le=" + quote(s)
}

// ErrorRatio is the PromQL of an SLO's error ratio over a range (5m, or
// Grafana's $__rate_interval).
func ErrorRatio(s *spec.Spec, slo spec.SLO, rng string) string {
	sel := SeriesSelector(s, slo)
	metric := Metric(slo)
	total := fmt.Sprintf("sum(rate(%s_count{%s}[%s]))", metric, sel, rng)
	if slo.Latency > 0 {
		good := fmt.Sprintf("sum(rate(%s_bucket{%s,%s}[%s]))", metric, sel, LeMatcher(slo.LatencyBound), rng)
		return fmt.Sprintf("1 - (\n  %s\n  /\n  %s\n)", good, total)
	}
	var bad string
	if slo.Protocol == spec.GRPC {
		bad = `rpc_response_status_code=~"` + grpcServerErrors + `"`
	} else {
		bad = `http_response_status_code=~"5.."`
	}
	// A service that has not failed yet has no error series: count that
	// as no errors rather than no data.
	errs := fmt.Sprintf("(sum(rate(%s_count{%s,%s}[%s])) or vector(0))", metric, sel, bad, rng)
	return fmt.Sprintf("%s\n/\n%s", errs, total)
}

// Generate builds the rule file of a spec.
func Generate(s *spec.Spec) (*File, error) {
	f := &File{}
	for _, slo := range s.SLOs {
		gs, err := sloGroups(s, slo)
		if err != nil {
			return nil, err
		}
		f.Groups = append(f.Groups, gs...)
	}
	return f, nil
}

func with(m map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(m)+len(kv)/2)
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func sloGroups(s *spec.Spec, slo spec.SLO) ([]Group, error) {
	id := ID(s, slo)
	base := sloLabels(s, slo)
	sel := Selector(s, slo)

	sli := Group{Name: "observe-slo-sli-recordings-" + id}
	for _, w := range Windows {
		sli.Rules = append(sli.Rules, Rule{
			Record: RecordErrorRatio(w),
			Expr:   ErrorRatio(s, slo, Window(w)),
			Labels: with(base, "sloth_window", Window(w)),
		})
	}
	// The whole window's ratio is averaged from the 5m one, as sloth does:
	// a rate over 30d on every evaluation would be expensive.
	period := Window(s.Window)
	sli.Rules = append(sli.Rules, Rule{
		Record: RecordErrorRatio(s.Window),
		Expr: fmt.Sprintf("sum_over_time(%s{%s}[%s])\n/ ignoring (sloth_window)\ncount_over_time(%s{%s}[%s])",
			RecordErrorRatio(Windows[0]), sel, period, RecordErrorRatio(Windows[0]), sel, period),
		Labels: with(base, "sloth_window", period),
	})

	budget := slo.Budget()
	meta := Group{Name: "observe-slo-meta-recordings-" + id, Rules: []Rule{
		{Record: RecordObjective, Expr: fmt.Sprintf("vector(%s)", number(slo.Ratio())), Labels: base},
		{Record: RecordErrorBudget, Expr: fmt.Sprintf("vector(%s)", number(budget)), Labels: base},
		{Record: RecordTimePeriodDays, Expr: fmt.Sprintf("vector(%d)", s.Window/(24*time.Hour)), Labels: base},
		{Record: RecordCurrentBurnRate, Expr: fmt.Sprintf("%s{%s}\n/ on (sloth_id, sloth_slo, sloth_service) group_left\n%s{%s}",
			RecordErrorRatio(Windows[0]), sel, RecordErrorBudget, sel), Labels: base},
		{Record: RecordPeriodBurnRate, Expr: fmt.Sprintf("%s{%s}\n/ on (sloth_id, sloth_slo, sloth_service) group_left\n%s{%s}",
			RecordErrorRatio(s.Window), sel, RecordErrorBudget, sel), Labels: base},
		{Record: RecordBudgetRemaining, Expr: fmt.Sprintf("1 - %s{%s}", RecordPeriodBurnRate, sel), Labels: base},
		{Record: RecordInfo, Expr: "vector(1)", Labels: with(base,
			"sloth_mode", "observe", "sloth_spec", "observe/v1", "sloth_objective", number(slo.Objective))},
	}}

	alerts := Group{Name: "observe-slo-alerts-" + id}
	for _, sev := range []struct {
		name    string
		windows []BurnWindow
	}{{"page", Page}, {"ticket", Ticket}} {
		a, err := burnAlert(s, slo, sev.name, sev.windows)
		if err != nil {
			return nil, err
		}
		alerts.Rules = append(alerts.Rules, a)
	}
	a, err := absentAlert(s, slo)
	if err != nil {
		return nil, err
	}
	alerts.Rules = append(alerts.Rules, a)
	return []Group{sli, meta, alerts}, nil
}

// AlertName is the name of an SLO's burn-rate alert
// (CheckoutAvailabilityErrorBudgetBurn); both severities share it.
func AlertName(s *spec.Spec, slo spec.SLO) string {
	return camel(s.Service) + camel(slo.Name) + "ErrorBudgetBurn"
}

// AbsentAlertName is the name of the alert on an SLO's missing metric.
func AbsentAlertName(s *spec.Spec, slo spec.SLO) string {
	return camel(s.Service) + camel(slo.Name) + "SLIAbsent"
}

func camel(s string) string {
	var b strings.Builder
	up := true
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
			if up {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			up = false
		case r >= 'A' && r <= 'Z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			up = false
		default:
			up = true
		}
	}
	return b.String()
}

func burnAlert(s *spec.Spec, slo spec.SLO, severity string, windows []BurnWindow) (Rule, error) {
	sel := Selector(s, slo)
	budget := number(slo.Budget())
	var parts, speeds []string
	for _, w := range windows {
		f := number(w.Factor(s.Window))
		cond := func(win time.Duration) string {
			return fmt.Sprintf("max without (sloth_window) (%s{%s} > (%s * %s))", RecordErrorRatio(win), sel, f, budget)
		}
		parts = append(parts, fmt.Sprintf("(\n  %s\n  and\n  %s\n)", cond(w.Short), cond(w.Long)))
		speeds = append(speeds, fmt.Sprintf("%s× over %s and %s", f, Window(w.Long), Window(w.Short)))
	}
	ann, err := annotations(s, slo, severity)
	if err != nil {
		return Rule{}, err
	}
	ann["summary"] = fmt.Sprintf("%s %s SLO: the error budget is burning too fast (%s)", s.Service, slo.Name, severity)
	ann["description"] = fmt.Sprintf("Objective: %s. Error ratio now {{ $value | humanizePercentage }}; the error budget is %s%% of requests over %s. Alerting burn rates: %s.",
		templateSafe(describe(s, slo)), number(round(100-slo.Objective)), Window(s.Window), strings.Join(speeds, "; "))
	return Rule{
		Alert:       AlertName(s, slo),
		Expr:        strings.Join(parts, "\nor\n"),
		Labels:      map[string]string{"severity": severity, "slo": slo.Name, "service": s.Service, "sloth_severity": severity},
		Annotations: ann,
	}, nil
}

func absentAlert(s *spec.Spec, slo spec.SLO) (Rule, error) {
	ann, err := annotations(s, slo, "")
	if err != nil {
		return Rule{}, err
	}
	metric := Metric(slo) + "_count"
	ann["summary"] = fmt.Sprintf("%s %s SLO: no %s series, so the SLO is not measured", s.Service, slo.Name, metric)
	ann["description"] = templateSafe(fmt.Sprintf("Prometheus has no %s{%s} for 10 minutes: the job is not scraped, the job label is not %q, or nothing was served on %s since the service started.",
		metric, SeriesSelector(s, slo), s.Job, describeWhat(slo)))
	return Rule{
		Alert:       AbsentAlertName(s, slo),
		Expr:        fmt.Sprintf("absent(%s{%s})", metric, SeriesSelector(s, slo)),
		For:         "10m",
		Labels:      map[string]string{"severity": "ticket", "slo": slo.Name, "service": s.Service},
		Annotations: ann,
	}, nil
}

func annotations(s *spec.Spec, slo spec.SLO, severity string) (map[string]string, error) {
	d := spec.URLData{Service: s.Service, SLO: slo.Name, Severity: severity, UID: s.DashboardUID()}
	var runbook, dash strings.Builder
	if err := s.RunbookURL.Execute(&runbook, d); err != nil {
		return nil, fmt.Errorf("runbook_url: %w", err)
	}
	if err := s.DashboardURL.Execute(&dash, d); err != nil {
		return nil, fmt.Errorf("dashboard_url: %w", err)
	}
	ann := map[string]string{}
	if v := runbook.String(); v != "" {
		ann["runbook_url"] = templateSafe(v)
	}
	if v := dash.String(); v != "" {
		ann["dashboard_url"] = templateSafe(v)
	}
	return ann, nil
}

// describe says what an SLO promises, in words.
func describe(s *spec.Spec, slo spec.SLO) string {
	if slo.Description != "" {
		return slo.Description
	}
	what := "not failing (5xx)"
	if slo.Protocol == spec.GRPC {
		what = "not failing (" + strings.ReplaceAll(grpcServerErrors, "|", ", ") + ")"
	}
	if slo.Latency > 0 {
		what = "answered within " + slo.Latency.String()
	}
	return fmt.Sprintf("%s%% of requests to %s on %s %s, over %s", number(slo.Objective), s.Service, describeWhat(slo), what, Window(s.Window))
}

func describeWhat(slo spec.SLO) string {
	switch {
	case len(slo.Routes) > 0:
		return "routes " + strings.Join(slo.Routes, ", ")
	case len(slo.RPCMethods) > 0:
		return "methods " + strings.Join(slo.RPCMethods, ", ")
	case slo.Protocol == spec.GRPC:
		return "every gRPC method"
	}
	return "every route"
}

// templateSafe keeps text from the spec out of Prometheus's templating.
func templateSafe(s string) string {
	return strings.NewReplacer("{{", `{{ "{{" }}`, "}}", `{{ "}}" }}`).Replace(s)
}

// Marshal writes a rule file as YAML, with a header saying where it came from.
func Marshal(f any, source string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Code generated by observe rules -f %s; DO NOT EDIT.\n", source)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// PrometheusRule is the Prometheus Operator's object holding rule groups.
type PrometheusRule struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   ObjectMeta `yaml:"metadata"`
	Spec       File       `yaml:"spec"`
}

// ObjectMeta is the part of Kubernetes' metadata a PrometheusRule needs.
type ObjectMeta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace,omitempty"`
	Labels    map[string]string `yaml:"labels,omitempty"`
}

// AsPrometheusRule wraps the rules in a PrometheusRule object named after
// the service.
func AsPrometheusRule(s *spec.Spec, f *File, namespace string, labels map[string]string) *PrometheusRule {
	name := strings.Trim(strings.ReplaceAll(strings.TrimPrefix(s.DashboardUID(), "observe-"), "_", "-"), "-") + "-slo"
	return &PrometheusRule{
		APIVersion: "monitoring.coreos.com/v1",
		Kind:       "PrometheusRule",
		Metadata:   ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec:       *f,
	}
}
