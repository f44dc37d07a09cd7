// Command benchtable reads `go test -bench` output (several -count runs) on
// stdin and prints a Markdown table of medians per benchmark, with each
// row's time and allocations relative to the group's observe row.
//
// Groups are top-level benchmarks; within a group, sub-benchmarks are the
// contenders ("BenchmarkHTTPSampled/observe", "BenchmarkHTTPSampled/otelhttp").
// The first contender whose name starts with "observe" is the reference.
//
// With -added, a group with a "bare" row (the same work uninstrumented)
// gets a second table: what each row adds over bare, paired run by run,
// and the medians of those per-run figures, with the added time relative
// to observe's added time in the same run. A row's n-th run is paired with
// bare's n-th run, so the input must hold one run of each row per process,
// process after process (.ci/benchgrpc.sh); go test's -count runs a row's
// repetitions back to back, which this pairing would misread.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var (
	line   = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)
	metric = regexp.MustCompile(`([\d.]+) (\S+)`)
)

type samples struct{ ns, cpu, bytes, allocs []float64 }

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
	added := flag.Bool("added", false, "also print what each row adds over its group's bare row, paired run by run")
	flag.Parse()
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
		for _, mm := range metric.FindAllStringSubmatch(m[2], -1) {
			v, _ := strconv.ParseFloat(mm[1], 64)
			switch mm[2] {
			case "ns/op":
				s.ns = append(s.ns, v)
			case "cpu-ns/op":
				s.cpu = append(s.cpu, v)
			case "B/op":
				s.bytes = append(s.bytes, v)
			case "allocs/op":
				s.allocs = append(s.allocs, v)
			}
		}
	}
	if len(order) == 0 {
		fmt.Fprintln(os.Stderr, "benchtable: no benchmark lines on stdin")
		os.Exit(1)
	}
	// A row's reference is the row of the same group that differs from it in
	// exactly one name segment, that segment naming observe: so
	// "TraceHTTP/otelhttp/unsampled" is compared with "TraceHTTP/observe/unsampled".
	refOf := func(n string) string {
		seg := strings.Split(n, "/")
		for _, cand := range order {
			cs := strings.Split(cand, "/")
			if len(cs) != len(seg) || cs[0] != seg[0] {
				continue
			}
			diff, obs := 0, false
			for k := 1; k < len(cs); k++ {
				if cs[k] != seg[k] {
					diff++
					obs = strings.HasPrefix(cs[k], "observe")
				}
			}
			if diff == 0 {
				for k := 1; k < len(cs); k++ {
					if strings.HasPrefix(cs[k], "observe") {
						return cand
					}
				}
			}
			if diff == 1 && obs {
				return cand
			}
		}
		return ""
	}
	if len(machine) > 0 {
		fmt.Printf("Machine: %s\n\n", strings.Join(machine, "; "))
	}
	fmt.Println("| benchmark | runs | median ns/op | cpu-ns/op | B/op | allocs/op | time vs observe | allocs vs observe |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, n := range order {
		s := data[n]
		ns, b, a := median(s.ns), median(s.bytes), median(s.allocs)
		rt, ra := "", ""
		if ref := refOf(n); ref != "" {
			r := data[ref]
			if rn := median(r.ns); rn > 0 {
				rt = fmt.Sprintf("%.2fx", ns/rn)
			}
			ra = fmt.Sprintf("%+.0f", a-median(r.allocs))
		}
		cpu := "—"
		if len(s.cpu) > 0 {
			cpu = fmt.Sprintf("%.0f", median(s.cpu))
		}
		fmt.Printf("| %s | %d | %.0f | %s | %.0f | %.0f | %s | %s |\n", n, len(s.ns), ns, cpu, b, a, rt, ra)
	}
	if *added {
		printAdded(order, data, refOf)
	}
}

// printAdded prints the table of what each two-segment row adds over its
// group's bare row, paired run by run.
func printAdded(order []string, data map[string]*samples, refOf func(string) string) {
	header := false
	for _, n := range order {
		seg := strings.Split(n, "/")
		if len(seg) != 2 || seg[1] == "bare" {
			continue
		}
		bare, ok := data[seg[0]+"/bare"]
		if !ok {
			continue
		}
		s := data[n]
		runs := min(len(s.ns), len(bare.ns))
		var add, addCPU, rel []float64
		ref := refOf(n)
		for i := range runs {
			a := s.ns[i] - bare.ns[i]
			add = append(add, a)
			if i < len(s.cpu) && i < len(bare.cpu) {
				addCPU = append(addCPU, s.cpu[i]-bare.cpu[i])
			}
			if r, ok := data[ref]; ok && i < len(r.ns) {
				if ra := r.ns[i] - bare.ns[i]; ra > 0 {
					rel = append(rel, a/ra)
				}
			}
		}
		if runs == 0 {
			continue
		}
		if !header {
			fmt.Println()
			fmt.Println("Added over the bare row of the same process, paired run by run (medians of the per-run figures):")
			fmt.Println()
			fmt.Println("| benchmark | runs | added ns/op | added cpu-ns/op | added allocs/op | added time vs observe's |")
			fmt.Println("|---|---:|---:|---:|---:|---:|")
			header = true
		}
		cpu, r := "—", ""
		if len(addCPU) > 0 {
			cpu = fmt.Sprintf("%.0f", median(addCPU))
		}
		if len(rel) > 0 {
			r = fmt.Sprintf("%.2fx", median(rel))
		}
		fmt.Printf("| %s | %d | %.0f | %s | %.0f | %s |\n", n, runs, median(add), cpu, median(s.allocs)-median(bare.allocs), r)
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
