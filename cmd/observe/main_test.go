package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"gopkg.in/yaml.v3"

	"github.com/observekit/observe/cmd/observe/internal/rules"
	"github.com/observekit/observe/internal/testbackend"
)

var update = flag.Bool("update", false, "rewrite the golden files and the quickstart example's generated files")

// runCmd runs the command and returns its exit code, stdout and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func generate(t *testing.T, args ...string) []byte {
	t.Helper()
	code, out, errOut := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("observe %v: exit %d: %s", args, code, errOut)
	}
	return []byte(out)
}

// golden compares got with a file, or rewrites it under -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/observe -run %s -update writes it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what the command generates now; if the change is intended, run go test ./cmd/observe -run %s -update\n--- got:\n%s", path, t.Name(), got)
	}
}

// outputs are every generated file the tests check: the golden sample's,
// the quickstart example's and the promtool unit tests' spec's.
type output struct {
	name                             string // file under testdata/golden, or a path
	rules, prometheusRule, dashboard []byte
}

func generated(t *testing.T) map[string]output {
	t.Helper()
	out := map[string]output{}
	for name, spec := range map[string]string{
		"sample":     "testdata/sample.yaml",
		"quickstart": "../../examples/quickstart/slo.yaml",
		"burn":       "testdata/burn.yaml",
	} {
		out[name] = output{
			name:           name,
			rules:          generate(t, "rules", "-f", spec),
			prometheusRule: generate(t, "rules", "-f", spec, "-prometheusrule", "-namespace", "shop"),
			dashboard:      generate(t, "dashboard", "-f", spec),
		}
	}
	return out
}

func TestGolden(t *testing.T) {
	g := generated(t)
	s := g["sample"]
	golden(t, "testdata/golden/rules.yml", s.rules)
	golden(t, "testdata/golden/prometheusrule.yml", s.prometheusRule)
	golden(t, "testdata/golden/dashboard.json", s.dashboard)
	// The quickstart's generated rules and dashboard are committed as an
	// example, and must stay what the command generates.
	q := g["quickstart"]
	golden(t, "../../examples/quickstart/rules.yml", q.rules)
	golden(t, "../../examples/quickstart/dashboard.json", q.dashboard)
}

// The -o flag writes the same bytes as standard output.
func TestOutputFile(t *testing.T) {
	o := filepath.Join(t.TempDir(), "rules.yml")
	generate(t, "rules", "-f", "testdata/sample.yaml", "-o", o)
	got, err := os.ReadFile(o)
	if err != nil {
		t.Fatal(err)
	}
	if want := generate(t, "rules", "-f", "testdata/sample.yaml"); !bytes.Equal(got, want) {
		t.Error("-o wrote something else than standard output")
	}
}

func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/promtool"); err == nil {
		return "/usr/bin/promtool"
	}
	testbackend.Missing(t, "promtool", "apt-get update && apt-get install -y prometheus (installs /usr/bin/promtool)")
	return ""
}

func runPromtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// promtool check rules is clean on every generated rule file, and on the
// groups of every generated PrometheusRule.
func TestPromtoolCheckRules(t *testing.T) {
	promtool(t)
	dir := t.TempDir()
	var files []string
	for name, o := range generated(t) {
		f := filepath.Join(dir, name+".yml")
		if err := os.WriteFile(f, o.rules, 0o644); err != nil {
			t.Fatal(err)
		}
		var pr rules.PrometheusRule
		if err := yaml.Unmarshal(o.prometheusRule, &pr); err != nil {
			t.Fatal(err)
		}
		if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Namespace != "shop" || pr.Metadata.Name == "" {
			t.Errorf("%s: PrometheusRule header = %+v", name, pr)
		}
		b, err := rules.Marshal(&pr.Spec, name)
		if err != nil {
			t.Fatal(err)
		}
		fcr := filepath.Join(dir, name+"-prometheusrule-spec.yml")
		if err := os.WriteFile(fcr, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f, fcr)
	}
	out := runPromtool(t, dir, append([]string{"check", "rules"}, files...)...)
	if strings.Count(out, "SUCCESS") != len(files) {
		t.Errorf("promtool check rules:\n%s", out)
	}
	// Beyond syntax: promtool's lint finds no duplicate rules either.
	for _, f := range files {
		runPromtool(t, dir, "check", "rules", "--lint=all", "--lint-fatal", f)
	}
}

// promtool test rules: fast burn pages in the expected time, slow burn opens
// a ticket and does not page, healthy traffic fires nothing, recovery
// resolves, latency counts at the exact bucket bound (testdata/burn_test.yml),
// and the annotations come out as written (testdata/annotations_test.yml).
func TestPromtoolTestRules(t *testing.T) {
	promtool(t)
	full := generate(t, "rules", "-f", "testdata/burn.yaml")
	var f rules.File
	if err := yaml.Unmarshal(full, &f); err != nil {
		t.Fatal(err)
	}
	for gi := range f.Groups {
		for ri := range f.Groups[gi].Rules {
			f.Groups[gi].Rules[ri].Annotations = nil
		}
	}
	bare, err := rules.Marshal(&f, "burn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		test  string
		rules []byte
	}{{"burn_test.yml", bare}, {"annotations_test.yml", full}} {
		t.Run(tc.test, func(t *testing.T) {
			dir := t.TempDir()
			test, err := os.ReadFile(filepath.Join("testdata", tc.test))
			if err != nil {
				t.Fatal(err)
			}
			for name, b := range map[string][]byte{"rules.yml": tc.rules, tc.test: test} {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out := runPromtool(t, dir, "test", "rules", tc.test)
			if !strings.Contains(out, "SUCCESS") {
				t.Errorf("promtool test rules %s:\n%s", tc.test, out)
			}
		})
	}
}

// Every generated dashboard decodes with the builder's strict decoder (no
// unknown or missing fields, every panel and query of a known kind) and
// encodes back to the same JSON.
func TestDashboardStrictRoundTrip(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	for name, o := range generated(t) {
		d, err := strictDecode(o.dashboard)
		if err != nil {
			t.Fatalf("%s: strict decode: %v", name, err)
		}
		back, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		if err := json.Unmarshal(o.dashboard, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(back, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: the dashboard changed through a strict decode and encode:\n%s", name, back)
		}
		// Datasources are variables, never a uid of some Grafana.
		for _, m := range dsRefs(a) {
			if uid, _ := m["uid"].(string); !strings.HasPrefix(uid, "${") {
				t.Errorf("%s: hard-coded datasource %v", name, m)
			}
		}
	}
}

// strictDecode decodes a dashboard with the SDK's strict decoders, and
// returns it as the SDK's regular decoder reads it.
//
// grafana-foundation-sdk v0.0.22's strict decoders return an empty
// cog.BuildErrors — a non-nil error — when all is well, and the callers of
// some of them give up on that "error" before they keep what was decoded:
// PanelOrRowPanel drops the panel, Panel drops every target and its
// options. They still report real problems (unknown keys, wrong types)
// as a non-empty BuildErrors. So the strict decoders are run for their
// errors — on the dashboard, and on each panel (which Dashboard's would
// not reach) — and the value comes from the regular decoder; the caller
// checks that it encodes back to the same JSON, which nothing unknown to
// the typed model survives.
func strictDecode(b []byte) (dashboard.Dashboard, error) {
	var d dashboard.Dashboard
	var strict dashboard.Dashboard
	if err := noErrors(strict.UnmarshalJSONStrict(b)); err != nil {
		return d, err
	}
	var raw struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return d, err
	}
	for i, p := range raw.Panels {
		var kind struct{ Type string }
		if err := json.Unmarshal(p, &kind); err != nil {
			return d, err
		}
		var err error
		if kind.Type == "row" {
			err = new(dashboard.RowPanel).UnmarshalJSONStrict(p)
		} else {
			err = new(dashboard.Panel).UnmarshalJSONStrict(p)
		}
		if err = noErrors(err); err != nil {
			return d, fmt.Errorf("panels[%d]: %w", i, err)
		}
	}
	err := json.Unmarshal(b, &d)
	return d, err
}

func noErrors(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

// The strict decoder does catch what is wrong: an unknown key in a panel,
// a query of an unknown kind.
func TestStrictDecoderCatches(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	good := generate(t, "dashboard", "-f", "testdata/sample.yaml")
	if _, err := strictDecode(good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][2]string{
		{`"legendFormat":`, `"legendFormatt":`},
		{`"title": "Goroutines"`, `"title": "Goroutines", "tittle": 1`},
		{`"unit": "reqps"`, `"unit": 5`},
		{`"refresh": "1m"`, `"refresh": ["1m"]`},
	} {
		b := bytes.Replace(good, []byte(strings.ReplaceAll(bad[0], `": `, `":`)), []byte(bad[1]), 1)
		if bytes.Equal(b, good) {
			b = bytes.Replace(good, []byte(bad[0]), []byte(bad[1]), 1)
		}
		if bytes.Equal(b, good) {
			t.Fatalf("%q not found in the dashboard", bad[0])
		}
		if _, err := strictDecode(b); err == nil {
			t.Errorf("strict decode accepted %s", bad[1])
		}
	}
}

// dsRefs finds every "datasource" object in a decoded JSON document.
func dsRefs(v any) []map[string]any {
	var out []map[string]any
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if m, ok := e.(map[string]any); ok && k == "datasource" {
				out = append(out, m)
			}
			out = append(out, dsRefs(e)...)
		}
	case []any:
		for _, e := range v {
			out = append(out, dsRefs(e)...)
		}
	}
	return out
}

func TestCheck(t *testing.T) {
	code, out, errOut := runCmd(t, "check", "-f", "../../examples/quickstart/slo.yaml")
	if code != 0 || !strings.Contains(out, "ok: service quickstart") {
		t.Errorf("check on the quickstart spec: exit %d, %q %q", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "slo.yaml")
	if err := os.WriteFile(bad, []byte("service: checkout\nslos:\n  - name: latency\n    objective: 99\n    latency: 300ms\n    routes: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"check", "rules", "dashboard"} {
		code, out, errOut = runCmd(t, cmd, "-f", bad)
		if code != 1 || out != "" {
			t.Errorf("%s on a bad spec: exit %d, stdout %q", cmd, code, out)
		}
		for _, want := range []string{bad + ":5:14: slos[0] (latency).latency: 300ms is not a bucket bound", "250ms and 500ms",
			bad + ":6:13: slos[0] (latency).routes: the list is empty", "2 problem(s)"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", cmd, want, errOut)
			}
		}
	}
	for _, args := range [][]string{{}, {"nope"}, {"rules"}, {"rules", "-f", bad, "extra"}, {"check", "-prometheusrule", "-f", bad}, {"rules", "-f", bad, "-namespace", "x"}} {
		if code, _, _ := runCmd(t, args...); code != 2 {
			t.Errorf("observe %v: exit %d, want 2", args, code)
		}
	}
	if code, _, errOut := runCmd(t, "check", "-f", "testdata/does-not-exist.yaml"); code != 1 || !strings.Contains(errOut, "does-not-exist.yaml") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
}

// The library's packages do not import the command's dependencies (a YAML
// parser, Grafana's SDK): thanks to module graph pruning a user of the
// library downloads only their go.mod files, never their code.
func TestLibraryDoesNotImportCommandDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	list := exec.Command("go", "list", "github.com/observekit/observe/...")
	list.Dir = "../.."
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var lib []string
	for _, p := range strings.Fields(string(out)) {
		if !strings.HasPrefix(p, "github.com/observekit/observe/cmd/") && !strings.Contains(p, "/examples/") {
			lib = append(lib, p)
		}
	}
	if len(lib) < 7 {
		t.Fatalf("only %d library packages: %v", len(lib), lib)
	}
	deps := exec.Command("go", append([]string{"list", "-deps"}, lib...)...)
	deps.Dir = "../.."
	out, err = deps.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, banned := range []string{"gopkg.in/yaml.v3", "github.com/grafana/grafana-foundation-sdk/"} {
			if p == banned || strings.HasPrefix(p, banned) {
				t.Errorf("a library package imports %s, a dependency of cmd/observe only", p)
			}
		}
	}
}
