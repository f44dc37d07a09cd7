// Command observe generates Prometheus rules and a Grafana dashboard for a
// service instrumented with observe, from a small SLO spec, and checks the
// spec:
//
//	observe check -f slo.yaml
//	observe rules -f slo.yaml [-o rules.yml] [-prometheusrule [-namespace NS]]
//	observe dashboard -f slo.yaml [-o dashboard.json]
//
// Run it without installing: go run github.com/observekit/observe/cmd/observe@latest rules -f slo.yaml.
// The spec is described in the README ("SLO rules and dashboards").
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/observekit/observe/cmd/observe/internal/dashboard"
	"github.com/observekit/observe/cmd/observe/internal/rules"
	"github.com/observekit/observe/cmd/observe/internal/spec"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  observe check     -f slo.yaml                  validate the spec, explaining every problem
  observe rules     -f slo.yaml [-o rules.yml]   Prometheus recording and alerting rules
                    [-prometheusrule [-namespace NS]]  …as a Prometheus Operator PrometheusRule
  observe dashboard -f slo.yaml [-o dashboard.json]  a Grafana dashboard
`

// run is the command; it returns the exit code: 0 done, 1 the spec or an
// output failed, 2 bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("observe "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "the SLO spec (YAML)")
	out := fs.String("o", "", "write here instead of standard output")
	var asCR *bool
	var ns *string
	switch cmd {
	case "check", "dashboard":
	case "rules":
		asCR = fs.Bool("prometheusrule", false, "write a PrometheusRule object (monitoring.coreos.com/v1) for the Prometheus Operator")
		ns = fs.String("namespace", "", "the PrometheusRule's namespace (with -prometheusrule)")
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "observe: unknown command %q\n%s", cmd, usage)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if ns != nil && *ns != "" && !*asCR {
		fmt.Fprintf(stderr, "observe rules: -namespace goes with -prometheusrule\n%s", usage)
		return 2
	}
	if *file == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "observe %s: -f slo.yaml is required, and nothing else\n%s", cmd, usage)
		return 2
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		fmt.Fprintf(stderr, "observe %s: %v\n", cmd, err)
		return 1
	}
	s, err := spec.Parse(*file, data)
	if err != nil {
		var p *spec.Problems
		if errors.As(err, &p) {
			fmt.Fprintf(stderr, "%v\n%s: %d problem(s)\n", err, *file, len(p.List))
		} else {
			fmt.Fprintf(stderr, "observe %s: %v\n", cmd, err)
		}
		return 1
	}
	var b []byte
	switch cmd {
	case "check":
		fmt.Fprintf(stdout, "%s: ok: service %s (job %q), %d SLO(s) over %s\n", *file, s.Service, s.Job, len(s.SLOs), rules.Window(s.Window))
		return 0
	case "rules":
		var f *rules.File
		if f, err = rules.Generate(s); err == nil {
			if *asCR {
				b, err = rules.Marshal(rules.AsPrometheusRule(s, f, *ns, map[string]string{"app.kubernetes.io/managed-by": "observe"}), filepath.Base(*file))
			} else {
				b, err = rules.Marshal(f, filepath.Base(*file))
			}
		}
	case "dashboard":
		b, err = dashboard.JSON(s)
	}
	if err != nil {
		fmt.Fprintf(stderr, "observe %s: %v\n", cmd, err)
		return 1
	}
	if *out == "" {
		_, err = stdout.Write(b)
	} else {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "observe %s: %v\n", cmd, err)
		return 1
	}
	return 0
}
