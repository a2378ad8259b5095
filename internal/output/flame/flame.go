// Package flame turns a task's pprof profile into the tree a flame graph
// draws: one node per distinct call path, each with its total value, its
// frame type (kernel, native, go, jvm, v8js, cpython) and its children.
// Trees are bounded: nodes below a fraction of the total are folded into
// their parent's self value, so a huge profile stays a small document.
package flame

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// IntervalLabel is the numeric sample label (unix seconds) that marks the
// report interval a sample came from; the receiver sets it so that a task's
// merged profile can still be shown one interval at a time (and pprof users
// can -tagfocus on it).
const IntervalLabel = "contprof.interval.start"

// kernelMapping is the mapping file of kernel frames.
const kernelMapping = "[kernel.kallsyms]"

// Node is one frame on one call path.
type Node struct {
	Name string `json:"n"`
	// Type is the frame type; empty on the root.
	Type  string  `json:"t,omitempty"`
	Value int64   `json:"v"`
	Kids  []*Node `json:"c,omitempty"`
}

// Tree is a flame graph's data.
type Tree struct {
	Root *Node `json:"root"`
	// SampleType and Unit say what values are (e.g. cpu/nanoseconds).
	SampleType string `json:"sample_type"`
	Unit       string `json:"unit"`
	// Intervals are the report intervals in the profile, oldest first.
	Intervals []time.Time `json:"intervals,omitempty"`
	// Interval is the interval shown; zero for the whole task.
	Interval time.Time `json:"interval,omitzero"`
	// Nodes is how many nodes the tree has; Folded how many call paths
	// were folded into their parents to stay within the bound.
	Nodes  int `json:"nodes"`
	Folded int `json:"folded,omitempty"`
}

// Options of Build.
type Options struct {
	// Interval, when not zero, keeps only the samples of that report
	// interval.
	Interval time.Time
	// MinFraction drops nodes smaller than this share of the total
	// (default 1/5000).
	MinFraction float64
	// MaxNodes bounds the tree (default 20000).
	MaxNodes int
}

// Build makes the tree of p. It uses the profile's default sample type
// (e.g. cpu nanoseconds of an on-CPU profile), else its last one.
func Build(p *profile.Profile, opt Options) (*Tree, error) {
	if p == nil || len(p.SampleType) == 0 {
		return nil, fmt.Errorf("profile has no sample type")
	}
	if opt.MinFraction <= 0 {
		opt.MinFraction = 1.0 / 5000
	}
	if opt.MaxNodes <= 0 {
		opt.MaxNodes = 20000
	}
	vi := len(p.SampleType) - 1
	if p.DefaultSampleType != "" {
		for i, st := range p.SampleType {
			if st.Type == p.DefaultSampleType {
				vi = i
			}
		}
	}
	t := &Tree{Root: &Node{Name: "all"}, SampleType: p.SampleType[vi].Type, Unit: p.SampleType[vi].Unit, Interval: opt.Interval}
	seen := map[int64]bool{}
	names := map[*profile.Location][]frame{}
	children := map[*Node]map[frame]*Node{}
	for _, s := range p.Sample {
		if iv, ok := intervalOf(s); ok {
			if !seen[iv] {
				seen[iv] = true
				t.Intervals = append(t.Intervals, time.Unix(iv, 0).UTC())
			}
			if !opt.Interval.IsZero() && iv != opt.Interval.Unix() {
				continue
			}
		} else if !opt.Interval.IsZero() {
			continue
		}
		v := s.Value[vi]
		if v <= 0 {
			continue
		}
		n := t.Root
		n.Value += v
		// Locations are leaf first; a location's lines are innermost first.
		for i := len(s.Location) - 1; i >= 0; i-- {
			loc := s.Location[i]
			fs, ok := names[loc]
			if !ok {
				fs = frames(loc)
				names[loc] = fs
			}
			for j := len(fs) - 1; j >= 0; j-- {
				kids := children[n]
				if kids == nil {
					kids = map[frame]*Node{}
					children[n] = kids
				}
				c := kids[fs[j]]
				if c == nil {
					c = &Node{Name: fs[j].name, Type: fs[j].typ}
					kids[fs[j]] = c
					n.Kids = append(n.Kids, c)
				}
				c.Value += v
				n = c
			}
		}
	}
	slices.SortFunc(t.Intervals, func(a, b time.Time) int { return a.Compare(b) })
	min := int64(float64(t.Root.Value) * opt.MinFraction)
	t.Nodes = 1
	t.prune(t.Root, min, opt.MaxNodes)
	return t, nil
}

// prune drops children below min (their value stays in the parent as self
// time) and sorts the rest by name, as flame graphs do, breadth first so
// that the node bound cuts the deepest frames.
func (t *Tree) prune(root *Node, min int64, maxNodes int) {
	queue := []*Node{root}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		kept := n.Kids[:0]
		for _, c := range n.Kids {
			if c.Value < min || t.Nodes >= maxNodes {
				t.Folded++
				continue
			}
			t.Nodes++
			kept = append(kept, c)
		}
		clear(n.Kids[len(kept):])
		n.Kids = kept
		slices.SortFunc(n.Kids, func(a, b *Node) int { return cmp.Compare(a.Name, b.Name) })
		queue = append(queue, n.Kids...)
	}
}

func intervalOf(s *profile.Sample) (int64, bool) {
	if vs := s.NumLabel[IntervalLabel]; len(vs) > 0 {
		return vs[0], true
	}
	return 0, false
}

type frame struct{ name, typ string }

// frames names the frames of one location, innermost first.
func frames(loc *profile.Location) []frame {
	if len(loc.Line) == 0 {
		name := fmt.Sprintf("0x%x", loc.Address)
		if loc.Mapping != nil && loc.Mapping.File != "" {
			name = path.Base(loc.Mapping.File) + "+" + fmt.Sprintf("0x%x", loc.Address-loc.Mapping.Start+loc.Mapping.Offset)
		}
		return []frame{{name: name, typ: frameType(loc, "")}}
	}
	out := make([]frame, 0, len(loc.Line))
	for _, l := range loc.Line {
		name := "?"
		if l.Function != nil {
			name = l.Function.Name
		}
		out = append(out, frame{name: name, typ: frameType(loc, name)})
	}
	return out
}

// frameType recovers the profile.frame.type of a pprof location, which
// pprof has no field for: kernel frames are in the kernel mapping; Go
// binaries carry a Go build id (with slashes) where others carry a GNU one;
// JIT frames have no mapping and are told apart by the names their runtimes
// give them (perf maps).
func frameType(loc *profile.Location, name string) string {
	m := loc.Mapping
	switch {
	case m != nil && m.File == kernelMapping:
		return "kernel"
	case m != nil && strings.Contains(m.BuildID, "/"):
		return "go"
	case m == nil || m.File == "" || strings.HasPrefix(path.Base(m.File), "perf-"):
		return jitType(name)
	}
	return "native"
}

func jitType(name string) string {
	for _, p := range []string{"JS:", "LazyCompile:", "Function:", "Builtin:", "BytecodeHandler:", "Script:", "Eval:", "RegExp:", "Stub:"} {
		if strings.HasPrefix(name, p) {
			return "v8js"
		}
	}
	switch {
	case strings.HasPrefix(name, "py::") || strings.HasSuffix(name, ".py") || strings.Contains(name, ".py:"):
		return "cpython"
	case strings.HasPrefix(name, "L") && strings.Contains(name, ";"),
		strings.HasPrefix(name, "Interpreter"), strings.Contains(name, "::") && strings.Contains(name, "."):
		return "jvm"
	}
	return "native"
}

// MarkInterval labels every sample of one report interval's profile with
// the interval's start, so that merging a task's intervals keeps them apart.
func MarkInterval(p *profile.Profile, start time.Time) {
	if p == nil || start.IsZero() {
		return
	}
	for _, s := range p.Sample {
		if s.NumLabel == nil {
			s.NumLabel = map[string][]int64{}
		}
		s.NumLabel[IntervalLabel] = []int64{start.Unix()}
		if s.NumUnit == nil {
			s.NumUnit = map[string][]string{}
		}
		s.NumUnit[IntervalLabel] = []string{"seconds"}
	}
}
