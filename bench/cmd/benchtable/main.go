// Command benchtable reads `go test -bench` output (several -count runs) on
// stdin and prints a Markdown table of medians per benchmark, with each
// row's time and allocations relative to the group's observe row.
//
// Groups are top-level benchmarks; within a group, sub-benchmarks are the
// contenders ("BenchmarkHTTPSampled/observe", "BenchmarkHTTPSampled/otelhttp").
// The first contender whose name starts with "observe" is the reference.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var line = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) B/op)?(?:\s+([\d.]+) allocs/op)?`)

type samples struct{ ns, bytes, allocs []float64 }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func main() {
	data := map[string]*samples{}
	var order []string
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var machine []string
	for sc.Scan() {
		t := sc.Text()
		if strings.HasPrefix(t, "cpu:") || strings.HasPrefix(t, "goos:") || strings.HasPrefix(t, "goarch:") {
			if len(machine) < 3 && !contains(machine, t) {
				machine = append(machine, t)
			}
		}
		m := line.FindStringSubmatch(t)
		if m == nil {
			continue
		}
		name := strings.TrimPrefix(m[1], "Benchmark")
		s, ok := data[name]
		if !ok {
			s = &samples{}
			data[name] = s
			order = append(order, name)
		}
		f := func(x string) float64 { v, _ := strconv.ParseFloat(x, 64); return v }
		s.ns = append(s.ns, f(m[2]))
		if m[3] != "" {
			s.bytes = append(s.bytes, f(m[3]))
		}
		if m[4] != "" {
			s.allocs = append(s.allocs, f(m[4]))
		}
	}
	if len(order) == 0 {
		fmt.Fprintln(os.Stderr, "benchtable: no benchmark lines on stdin")
		os.Exit(1)
	}
	refs := map[string]string{}
	for _, n := range order {
		g, sub, ok := strings.Cut(n, "/")
		if ok && strings.HasPrefix(sub, "observe") {
			if _, seen := refs[g]; !seen {
				refs[g] = n
			}
		}
	}
	if len(machine) > 0 {
		fmt.Printf("Machine: %s\n\n", strings.Join(machine, "; "))
	}
	fmt.Println("| benchmark | runs | median ns/op | B/op | allocs/op | time vs observe | allocs vs observe |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, n := range order {
		s := data[n]
		ns, b, a := median(s.ns), median(s.bytes), median(s.allocs)
		rt, ra := "", ""
		g, _, _ := strings.Cut(n, "/")
		if ref, ok := refs[g]; ok {
			r := data[ref]
			if rn := median(r.ns); rn > 0 {
				rt = fmt.Sprintf("%.2fx", ns/rn)
			}
			ra = fmt.Sprintf("%+.0f", a-median(r.allocs))
		}
		fmt.Printf("| %s | %d | %.0f | %.0f | %.0f | %s | %s |\n", n, len(s.ns), ns, b, a, rt, ra)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
