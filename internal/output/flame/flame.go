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

	"github.com/contprof/contprof/internal/output/profiles"
)

// IntervalLabel is the numeric sample label (unix seconds) that marks the
// report interval a sample came from in a task's pprof download, so that
// the merged profile can still be shown one interval at a time (and pprof
// users can -tagfocus on it).
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

// builder grows a tree one stack at a time.
type builder struct {
	t        *Tree
	opt      Options
	seen     map[int64]bool
	children map[*Node]map[frame]*Node
}

func newBuilder(sampleType, unit string, opt Options) *builder {
	if opt.MinFraction <= 0 {
		opt.MinFraction = 1.0 / 5000
	}
	if opt.MaxNodes <= 0 {
		opt.MaxNodes = 20000
	}
	return &builder{
		t:   &Tree{Root: &Node{Name: "all"}, SampleType: sampleType, Unit: unit, Interval: opt.Interval},
		opt: opt, seen: map[int64]bool{}, children: map[*Node]map[frame]*Node{},
	}
}

// keep records the sample's report interval (0: unknown) and says whether
// the tree shows it.
func (b *builder) keep(iv int64) bool {
	if iv != 0 && !b.seen[iv] {
		b.seen[iv] = true
		b.t.Intervals = append(b.t.Intervals, time.Unix(iv, 0).UTC())
	}
	return b.opt.Interval.IsZero() || (iv != 0 && iv == b.opt.Interval.Unix())
}

// add adds value v along a stack given root first.
func (b *builder) add(v int64, stack []frame) {
	if v <= 0 {
		return
	}
	n := b.t.Root
	n.Value += v
	for _, f := range stack {
		kids := b.children[n]
		if kids == nil {
			kids = map[frame]*Node{}
			b.children[n] = kids
		}
		c := kids[f]
		if c == nil {
			c = &Node{Name: f.name, Type: f.typ}
			kids[f] = c
			n.Kids = append(n.Kids, c)
		}
		c.Value += v
		n = c
	}
}

func (b *builder) done() *Tree {
	t := b.t
	slices.SortFunc(t.Intervals, func(a, b time.Time) int { return a.Compare(b) })
	t.Nodes = 1
	t.prune(t.Root, int64(float64(t.Root.Value)*b.opt.MinFraction), b.opt.MaxNodes)
	return t
}

// FromProfile makes the tree of a task's merged profile in the neutral
// form, whose frames carry their exact frame type; intervals[i] is the
// report interval (unix seconds, 0 unknown) of p.Samples[i], or nil.
func FromProfile(p *profiles.Profile, intervals []int64, opt Options) (*Tree, error) {
	if p == nil {
		return nil, fmt.Errorf("no profile")
	}
	unit := p.Kind.SampleUnit
	sampleType := p.Kind.SampleType
	scale := int64(1)
	if p.Kind.Period > 0 && p.Kind.SampleUnit == "count" {
		// As the pprof download shows it: time, not sample counts.
		sampleType, unit, scale = p.Kind.PeriodType, p.Kind.PeriodUnit, p.Kind.Period
	}
	b := newBuilder(sampleType, unit, opt)
	var stack []frame
	for i, s := range p.Samples {
		var iv int64
		if i < len(intervals) {
			iv = intervals[i]
		}
		if !b.keep(iv) {
			continue
		}
		stack = stack[:0]
		for j := len(s.Frames) - 1; j >= 0; j-- { // leaf first in the profile
			f := &s.Frames[j]
			name := f.Function
			if name == "" {
				name = addressName(f.Address, f.Mapping)
			}
			stack = append(stack, frame{name: name, typ: string(f.Type)})
		}
		b.add(s.Value*scale, stack)
	}
	return b.done(), nil
}

func addressName(addr uint64, m *profiles.Mapping) string {
	if m != nil && m.File != "" {
		return fmt.Sprintf("%s+0x%x", path.Base(m.File), addr-m.Start+m.Offset)
	}
	return fmt.Sprintf("0x%x", addr)
}

// Build makes the tree of a pprof profile (frame types recovered as
// frameType says). It uses the profile's default sample type (e.g. cpu
// nanoseconds of an on-CPU profile), else its last one.
func Build(p *profile.Profile, opt Options) (*Tree, error) {
	if p == nil || len(p.SampleType) == 0 {
		return nil, fmt.Errorf("profile has no sample type")
	}
	vi := len(p.SampleType) - 1
	if p.DefaultSampleType != "" {
		for i, st := range p.SampleType {
			if st.Type == p.DefaultSampleType {
				vi = i
			}
		}
	}
	b := newBuilder(p.SampleType[vi].Type, p.SampleType[vi].Unit, opt)
	names := map[*profile.Location][]frame{}
	var stack []frame
	for _, s := range p.Sample {
		iv, _ := intervalOf(s)
		if !b.keep(iv) {
			continue
		}
		stack = stack[:0]
		// Locations are leaf first; a location's lines are innermost first.
		for i := len(s.Location) - 1; i >= 0; i-- {
			loc := s.Location[i]
			fs, ok := names[loc]
			if !ok {
				fs = frames(loc)
				names[loc] = fs
			}
			for j := len(fs) - 1; j >= 0; j-- {
				stack = append(stack, fs[j])
			}
		}
		b.add(s.Value[vi], stack)
	}
	return b.done(), nil
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
		var m *profiles.Mapping
		if loc.Mapping != nil {
			m = &profiles.Mapping{File: loc.Mapping.File, Start: loc.Mapping.Start, Offset: loc.Mapping.Offset}
		}
		return []frame{{name: addressName(loc.Address, m), typ: frameType(loc, "")}}
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
