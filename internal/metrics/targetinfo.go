package metrics

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/sdk/resource"
)

// targetInfo exposes the resource as target_info{service_name=…,
// service_version=…, deployment_environment=…} 1, the OpenTelemetry
// convention, so PromQL can join a service's series on its version:
//
//	rate(http_server_request_duration_seconds_count[5m])
//	  * on (job, instance) group_left (service_version) target_info
type targetInfo struct {
	desc   *prometheus.Desc
	metric prometheus.Metric
}

func newTargetInfo(res *resource.Resource) (*targetInfo, error) {
	byName := map[string][]string{}
	for it := res.Iter(); it.Next(); {
		kv := it.Attribute()
		name := promLabelName(string(kv.Key))
		byName[name] = append(byName[name], strings.ToValidUTF8(kv.Value.Emit(), "\uFFFD"))
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	values := make([]string, len(names))
	for i, n := range names {
		// Keys that sanitize alike are joined, as the OTel spec says.
		v := byName[n]
		slices.Sort(v)
		values[i] = strings.Join(v, ";")
	}
	desc := prometheus.NewDesc("target_info", "Target metadata: the OpenTelemetry resource of this service.", names, nil)
	m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, 1, values...)
	if err != nil {
		return nil, err
	}
	return &targetInfo{desc: desc, metric: m}, nil
}

func (t *targetInfo) Describe(ch chan<- *prometheus.Desc) { ch <- t.desc }
func (t *targetInfo) Collect(ch chan<- prometheus.Metric) { ch <- t.metric }

// promLabelName turns an attribute key into a Prometheus label name:
// characters outside [a-zA-Z0-9_] become '_', a leading digit gets "key_"
// and a leading "__" (reserved) gets "key".
func promLabelName(k string) string {
	b := []byte(k)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	s := string(b)
	switch {
	case s == "":
		return "key_"
	case s[0] >= '0' && s[0] <= '9':
		return "key_" + s
	case strings.HasPrefix(s, "__"):
		return "key" + s
	}
	return s
}
