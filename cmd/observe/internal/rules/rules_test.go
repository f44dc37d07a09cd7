package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe/cmd/observe/internal/spec"
)

// The SRE workbook's factors for a 30d window, and the same budget shares
// scaled to other windows.
func TestFactors(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		window time.Duration
		want   [4]float64
	}{
		{30 * day, [4]float64{14.4, 6, 3, 1}},
		{28 * day, [4]float64{13.44, 5.6, 2.8, 0.9333333333}},
		{90 * day, [4]float64{43.2, 18, 9, 3}},
	} {
		got := [4]float64{Page[0].Factor(tc.window), Page[1].Factor(tc.window), Ticket[0].Factor(tc.window), Ticket[1].Factor(tc.window)}
		if got != tc.want {
			t.Errorf("window %s: factors %v, want %v", Window(tc.window), got, tc.want)
		}
	}
}

func TestLeMatcher(t *testing.T) {
	for b, want := range map[float64]string{
		0.25:  `le="0.25"`,
		1:     `le=~"1|1\\.0"`,
		10:    `le=~"10|10\\.0"`,
		0.005: `le="0.005"`,
	} {
		if got := LeMatcher(b); got != want {
			t.Errorf("LeMatcher(%v) = %s, want %s", b, got, want)
		}
	}
}

func TestSeriesSelector(t *testing.T) {
	s, err := spec.Parse("s.yaml", []byte(`
service: shop
job: 'a"b'
slos:
  - {name: one, objective: 99, routes: ["/orders/{id}"]}
  - {name: two, objective: 99, routes: ["/a.b", "/c+{d}"]}
  - {name: rpc, objective: 99, rpc_methods: [x.Y/Z]}
  - {name: all, objective: 99, protocol: grpc}
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{
		`job="a\"b",http_route="/orders/{id}"`,
		`job="a\"b",http_route=~"/a\\.b|/c\\+\\{d\\}"`,
		`job="a\"b",rpc_system_name="grpc",rpc_method="x.Y/Z"`,
		`job="a\"b",rpc_system_name="grpc"`,
	} {
		if got := SeriesSelector(s, s.SLOs[i]); got != want {
			t.Errorf("%s: %s, want %s", s.SLOs[i].Name, got, want)
		}
	}
	if got := ErrorRatio(s, s.SLOs[2], "5m"); !strings.Contains(got, `rpc_response_status_code=~"UNKNOWN|DEADLINE_EXCEEDED|UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS"`) {
		t.Errorf("gRPC error ratio: %s", got)
	}
	if AlertName(s, s.SLOs[1]) != "ShopTwoErrorBudgetBurn" || AbsentAlertName(s, s.SLOs[0]) != "ShopOneSLIAbsent" {
		t.Error(AlertName(s, s.SLOs[1]), AbsentAlertName(s, s.SLOs[0]))
	}
}
