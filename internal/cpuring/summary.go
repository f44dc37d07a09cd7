package cpuring

import (
	"sort"
	"strings"

	"github.com/google/pprof/profile"
)

// Bounds of a summary, so that a profile with huge stacks cannot make the
// page's JSON large.
const (
	maxTop      = 25
	maxNodes    = 1500
	maxDepth    = 96
	minFraction = 0.002 // flame nodes under 0.2% of the total are left out
)

// Summary is what the status page draws: the CPU time of the trace's
// samples, its heaviest functions and a flame graph.
type Summary struct {
	Samples   int64  `json:"samples"`
	CPUNanos  int64  `json:"cpu_ns"`
	PeriodNs  int64  `json:"period_ns"`
	Top       []Func `json:"top"`
	Flame     *Node  `json:"flame"`
	Truncated bool   `json:"truncated,omitempty"` // nodes were left out of Flame
}

// Func is one function's CPU time: Self where it was the running frame,
// Cum where it was anywhere on the stack. Values are nanoseconds.
type Func struct {
	Name string `json:"name"`
	File string `json:"file,omitempty"`
	Self int64  `json:"self_ns"`
	Cum  int64  `json:"cum_ns"`
}

// Node is a frame of the flame graph, callers above callees: Value is the
// CPU time of the stacks through it, in nanoseconds.
type Node struct {
	Name     string  `json:"name"`
	Value    int64   `json:"value"`
	Children []*Node `json:"children,omitempty"`
	kids     map[string]*Node
}

// Summarize reads the CPU time of p's samples (the cpu/nanoseconds value,
// else the last one) into top functions and a flame graph.
func Summarize(p *profile.Profile) Summary {
	var s Summary
	if p == nil {
		return s
	}
	vi := len(p.SampleType) - 1
	ci := -1
	for i, st := range p.SampleType {
		switch st.Type {
		case "cpu":
			vi = i
		case "samples":
			ci = i
		}
	}
	if vi < 0 {
		return s
	}
	s.PeriodNs = p.Period
	root := &Node{Name: "all"}
	type acc struct {
		f         Func
		seenStack int
	}
	funcs := map[string]*acc{}
	var stack []*profile.Line
	for n, smp := range p.Sample {
		if vi >= len(smp.Value) {
			continue
		}
		v := smp.Value[vi]
		s.CPUNanos += v
		if ci >= 0 && ci < len(smp.Value) {
			s.Samples += smp.Value[ci]
		} else {
			s.Samples++
		}
		stack = stack[:0]
		for _, loc := range smp.Location {
			for i := range loc.Line {
				stack = append(stack, &loc.Line[i]) // leaf first
			}
		}
		node := root
		node.Value += v
		for i := len(stack) - 1; i >= 0; i-- {
			name, file := frameName(stack[i])
			a := funcs[name]
			if a == nil {
				a = &acc{f: Func{Name: name, File: file}, seenStack: -1}
				funcs[name] = a
			}
			if a.seenStack != n { // recursion counts once per stack
				a.f.Cum += v
				a.seenStack = n
			}
			if i == 0 {
				a.f.Self += v
			}
			if len(stack)-1-i < maxDepth {
				node = node.child(name)
				node.Value += v
			}
		}
	}
	for _, a := range funcs {
		s.Top = append(s.Top, a.f)
	}
	sort.Slice(s.Top, func(i, j int) bool {
		if s.Top[i].Self != s.Top[j].Self {
			return s.Top[i].Self > s.Top[j].Self
		}
		if s.Top[i].Cum != s.Top[j].Cum {
			return s.Top[i].Cum > s.Top[j].Cum
		}
		return s.Top[i].Name < s.Top[j].Name
	})
	if len(s.Top) > maxTop {
		s.Top = s.Top[:maxTop]
	}
	if s.Top == nil {
		s.Top = []Func{}
	}
	budget := maxNodes - 1 // the root
	min := int64(float64(root.Value) * minFraction)
	s.Truncated = root.finish(min, &budget)
	s.Flame = root
	return s
}

func frameName(l *profile.Line) (name, file string) {
	if l.Function == nil {
		return "?", ""
	}
	name = l.Function.Name
	if name == "" {
		name = l.Function.SystemName
	}
	if name == "" {
		name = "?"
	}
	return name, l.Function.Filename
}

func (n *Node) child(name string) *Node {
	if c := n.kids[name]; c != nil {
		return c
	}
	if n.kids == nil {
		n.kids = map[string]*Node{}
	}
	c := &Node{Name: name}
	n.kids[name] = c
	return c
}

// finish orders the children by value, heaviest first, and leaves out
// those under min and those past the node budget; it reports whether any
// was left out.
func (n *Node) finish(min int64, budget *int) (truncated bool) {
	kids := make([]*Node, 0, len(n.kids))
	for _, c := range n.kids {
		kids = append(kids, c)
	}
	n.kids = nil
	sort.Slice(kids, func(i, j int) bool {
		if kids[i].Value != kids[j].Value {
			return kids[i].Value > kids[j].Value
		}
		return strings.Compare(kids[i].Name, kids[j].Name) < 0
	})
	for _, c := range kids {
		if c.Value < min || *budget <= 0 {
			truncated = true
			continue
		}
		*budget--
		n.Children = append(n.Children, c)
	}
	for _, c := range n.Children {
		if c.finish(min, budget) {
			truncated = true
		}
	}
	return truncated
}
