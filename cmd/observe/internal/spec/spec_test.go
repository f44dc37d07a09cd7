package spec

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe/metrics"
)

func TestParseValid(t *testing.T) {
	s, err := Parse("slo.yaml", []byte(`
service: checkout
job: shop/checkout
window: 28d
traces_datasource: jaeger
slos:
  - name: availability
    objective: 99.9
    routes: ["/orders/{id}", "/cart"]
  - name: latency
    objective: 99
    latency: 250ms
  - name: rpc
    objective: 99.5%
    rpc_methods: [shop.Checkout/PlaceOrder]
  - name: rpc-all
    objective: 99
    protocol: grpc
    latency: 1s
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Service != "checkout" || s.Job != "shop/checkout" || s.Window != 28*24*time.Hour || s.TracesDatasource != "jaeger" {
		t.Errorf("spec = %+v", s)
	}
	if len(s.SLOs) != 4 {
		t.Fatalf("%d SLOs", len(s.SLOs))
	}
	a, l, r, ra := s.SLOs[0], s.SLOs[1], s.SLOs[2], s.SLOs[3]
	if a.Protocol != HTTP || len(a.Routes) != 2 || a.Latency != 0 || a.Budget() != 0.001 || a.Ratio() != 0.999 || a.Line != 7 {
		t.Errorf("availability = %+v (budget %v)", a, a.Budget())
	}
	if l.LatencyBound != 0.25 || l.Latency != 250*time.Millisecond {
		t.Errorf("latency = %+v", l)
	}
	if r.Protocol != GRPC || r.RPCMethods[0] != "shop.Checkout/PlaceOrder" || r.Objective != 99.5 {
		t.Errorf("rpc = %+v", r)
	}
	if ra.Protocol != GRPC || ra.LatencyBound != 1 {
		t.Errorf("rpc-all = %+v", ra)
	}
	if !slicesEqual(s.Buckets, metrics.DefaultDurationBuckets) || s.CustomBuckets {
		t.Errorf("buckets = %v", s.Buckets)
	}
}

func slicesEqual(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseDefaults(t *testing.T) {
	s, err := Parse("slo.yaml", []byte("service: checkout\nslos: [{name: availability, objective: 99}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Job != "checkout" || s.Window != 30*24*time.Hour || s.TracesDatasource != "tempo" || s.DashboardUID() != "observe-checkout" {
		t.Errorf("defaults = %+v", s)
	}
	var b strings.Builder
	if err := s.RunbookURL.Execute(&b, URLData{}); err != nil || b.String() != DefaultRunbookURL {
		t.Errorf("runbook = %q, %v", b.String(), err)
	}
}

func TestCustomBuckets(t *testing.T) {
	s, err := Parse("slo.yaml", []byte(`
service: checkout
buckets: [0.1, 300ms, "1s", 2]
slos:
  - {name: latency, objective: 99, latency: 300ms}
`))
	if err != nil {
		t.Fatal(err)
	}
	if !s.CustomBuckets || !slicesEqual(s.Buckets, []float64{0.1, 0.3, 1, 2}) || s.SLOs[0].LatencyBound != 0.3 {
		t.Errorf("spec = %+v %+v", s, s.SLOs[0])
	}
}

// Every problem is reported, each with its line and a message that says
// what to do.
func TestParseProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec string
		want []string // "line: substring"
	}{
		{"unknown key", "service: a\nslos: [{name: x, objective: 99}]\nwindw: 30d\n", []string{`3: the spec: unknown key "windw"`}},
		{"unknown SLO key", "service: a\nslos:\n  - name: x\n    objective: 99\n    route: [/a]\n", []string{`5: slos[0] (x): unknown key "route"`}},
		{"objective 100", "service: a\nslos:\n  - name: x\n    objective: 100\n", []string{"4: slos[0] (x).objective: 100 is outside (0, 100)"}},
		{"objective 0", "service: a\nslos:\n  - name: x\n    objective: 0\n", []string{"4: slos[0] (x).objective: 0 is outside (0, 100)"}},
		{"objective text", "service: a\nslos:\n  - name: x\n    objective: high\n", []string{"4: slos[0] (x).objective: want a percentage"}},
		{"empty routes", "service: a\nslos:\n  - name: x\n    objective: 99\n    routes: []\n", []string{"5: slos[0] (x).routes: the list is empty"}},
		{"empty route", "service: a\nslos:\n  - name: x\n    objective: 99\n    routes: [\"\"]\n", []string{"5: slos[0] (x).routes[0]: must not be empty"}},
		{"raw path", "service: a\nslos:\n  - name: x\n    objective: 99\n    routes: [orders]\n", []string{`5: slos[0] (x).routes[0]: "orders" is not a route template`}},
		{"bad latency", "service: a\nslos:\n  - name: x\n    objective: 99\n    latency: fast\n", []string{`5: slos[0] (x).latency: "fast" is not a positive duration`}},
		{"bad window", "service: a\nwindow: 30x\nslos: [{name: x, objective: 99}]\n", []string{`2: window: "30x" is not a duration`}},
		{"short window", "service: a\nwindow: 1d\nslos: [{name: x, objective: 99}]\n", []string{"2: window: 1d is outside 7d…366d"}},
		{"partial day", "service: a\nwindow: 7d12h\nslos: [{name: x, objective: 99}]\n", []string{"2: window: 7d12h is not a whole number of days"}},
		{"latency not a bound", "service: a\nslos:\n  - name: x\n    objective: 99\n    latency: 300ms\n",
			[]string{"5: slos[0] (x).latency: 300ms is not a bucket bound of the default buckets (metrics.DefaultDurationBuckets)",
				"the nearest bounds are 250ms and 500ms", "observe.WithDurationBuckets(…, 0.3, …)"}},
		{"latency above buckets", "service: a\nbuckets: [0.1, 0.2]\nslos:\n  - name: x\n    objective: 99\n    latency: 1s\n",
			[]string{"6: slos[0] (x).latency: 1s is not a bucket bound of the buckets listed on line 2", "the largest bound is 200ms"}},
		{"buckets not increasing", "service: a\nbuckets: [0.5, 0.25]\nslos: [{name: x, objective: 99}]\n", []string{"2: buckets[1]: 250ms is not above the previous bound 500ms"}},
		{"bucket negative", "service: a\nbuckets: [-1]\nslos: [{name: x, objective: 99}]\n", []string{"2: buckets[0]: -1 must be a positive"}},
		{"missing service", "slos: [{name: x, objective: 99}]\n", []string{"1: the spec: service is required"}},
		{"missing slos", "service: a\n", []string{"1: the spec: slos is required"}},
		{"empty slos", "service: a\nslos: []\n", []string{"2: slos: the list is empty"}},
		{"missing objective", "service: a\nslos:\n  - name: x\n", []string{"3: slos[0] (x): objective is required"}},
		{"duplicate names", "service: a\nslos:\n  - {name: x, objective: 99}\n  - {name: x, objective: 98}\n", []string{`4: slos[1].name: "x" is already the name of the SLO on line 3`}},
		{"bad name", "service: a\nslos:\n  - {name: \"x y\", objective: 99}\n", []string{`3: slos[0].name: "x y": use letters`}},
		{"routes on grpc", "service: a\nslos:\n  - {name: x, objective: 99, protocol: grpc, routes: [/a]}\n", []string{"3: slos[0] (x).routes: set on a grpc SLO"}},
		{"rpc on http", "service: a\nslos:\n  - {name: x, objective: 99, protocol: http, rpc_methods: [a.B/C]}\n", []string{"3: slos[0] (x).rpc_methods: set on an http SLO"}},
		{"bad rpc method", "service: a\nslos:\n  - {name: x, objective: 99, rpc_methods: [GetUser]}\n", []string{`3: slos[0] (x).rpc_methods[0]: "GetUser" is not a gRPC method`}},
		{"bad protocol", "service: a\nslos:\n  - {name: x, objective: 99, protocol: udp}\n", []string{`3: slos[0] (x).protocol: "udp": want http or grpc`}},
		{"key twice", "service: a\nservice: b\nslos: [{name: x, objective: 99}]\n", []string{"2: the spec: service is set twice"}},
		{"bad template", "service: a\nrunbook_url: \"{{.Nope}}\"\nslos: [{name: x, objective: 99}]\n", []string{"2: runbook_url:", "can't evaluate field Nope"}},
		{"not yaml", "service: a\nslos: [\n", []string{"not valid YAML"}},
		{"not a mapping", "- a\n- b\n", []string{"1: the spec: want a mapping"}},
		{"two documents", "service: a\nslos: [{name: x, objective: 99}]\n---\nservice: b\n", []string{"a second YAML document"}},
		{"empty", "", []string{"empty spec"}},
		{"several at once", "service: a\nslos:\n  - name: x\n    objective: 101\n    latency: 300ms\n  - name: y\n    objective: 99\n    routes: []\n",
			[]string{"4: slos[0] (x).objective", "5: slos[0] (x).latency", "8: slos[1] (y).routes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("slo.yaml", []byte(tc.spec))
			var p *Problems
			if !errors.As(err, &p) {
				t.Fatalf("err = %v, want *Problems", err)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if line, rest, ok := strings.Cut(w, ": "); ok && line != "" && strings.Trim(line, "0123456789") == "" {
					w = "slo.yaml:" + line + ":"
					if !strings.Contains(msg, w) || !strings.Contains(msg, rest) {
						t.Errorf("error does not name line %s with %q:\n%s", line, rest, msg)
					}
					continue
				}
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
		})
	}
}

// The spec parser never panics and either returns a spec that is valid
// or problems that each carry a message.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"service: a\nslos: [{name: x, objective: 99}]\n",
		"service: checkout\nwindow: 28d\nbuckets: [0.1, 300ms]\nslos:\n  - {name: l, objective: 99.9, latency: 300ms, routes: [/a]}\n  - {name: g, objective: 99, rpc_methods: [a.B/C]}\n",
		"service: a\nrunbook_url: \"{{.SLO}}\"\nslos: [{name: x, objective: 101}]\n",
		"a: &x [1, *x]\n",
		"service: *a\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("f.yaml", data)
		if err != nil {
			var p *Problems
			if !errors.As(err, &p) || len(p.List) == 0 {
				t.Fatalf("error %v is not a non-empty *Problems", err)
			}
			for _, q := range p.List {
				if q.Msg == "" {
					t.Fatal("a problem without a message")
				}
			}
			return
		}
		if s.Service == "" || len(s.SLOs) == 0 {
			t.Fatalf("valid spec without service or SLOs: %+v", s)
		}
		for _, slo := range s.SLOs {
			if !(slo.Objective > 0 && slo.Objective < 100) || slo.Budget() <= 0 {
				t.Fatalf("objective %v accepted", slo.Objective)
			}
			if slo.Latency > 0 && slo.LatencyBound <= 0 {
				t.Fatalf("latency %v without a bound", slo.Latency)
			}
		}
	})
}
