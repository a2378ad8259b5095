package flame

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/contprof/contprof/internal/output/profiles"
)

// testProfile has two intervals; main -> work -> (hot | cold) in a Go
// binary, plus a kernel frame under hot, and one inlined location.
func testProfile(t *testing.T) *profile.Profile {
	t.Helper()
	goBin := &profile.Mapping{ID: 1, Start: 0x400000, Limit: 0x800000, File: "/bin/app", BuildID: "a/b/c/d"}
	cBin := &profile.Mapping{ID: 2, Start: 0x1000, Limit: 0x9000, File: "/usr/lib/libc.so.6", BuildID: "abcdef"}
	kern := &profile.Mapping{ID: 3, File: "[kernel.kallsyms]"}
	fn := func(id uint64, name string) *profile.Function { return &profile.Function{ID: id, Name: name} }
	mainF, workF, hotF, coldF, inl, memcpyF, sysF := fn(1, "main.main"), fn(2, "main.work"), fn(3, "main.hot"), fn(4, "main.cold"), fn(5, "main.inlined"), fn(6, "memcpy"), fn(7, "do_syscall_64")
	loc := func(id uint64, m *profile.Mapping, fs ...*profile.Function) *profile.Location {
		l := &profile.Location{ID: id, Mapping: m, Address: 0x1000 + id}
		for _, f := range fs {
			l.Line = append(l.Line, profile.Line{Function: f})
		}
		return l
	}
	lMain, lWork, lHot, lCold := loc(1, goBin, mainF), loc(2, goBin, workF), loc(3, goBin, hotF), loc(4, goBin, inl, coldF)
	lMemcpy, lSys := loc(5, cBin, memcpyF), loc(6, kern, sysF)
	lAnon := &profile.Location{ID: 7, Address: 0xdead}
	p := &profile.Profile{
		SampleType:        []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		DefaultSampleType: "cpu",
		PeriodType:        &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Mapping:           []*profile.Mapping{goBin, cBin, kern},
		Location:          []*profile.Location{lMain, lWork, lHot, lCold, lMemcpy, lSys, lAnon},
		Function:          []*profile.Function{mainF, workF, hotF, coldF, inl, memcpyF, sysF},
	}
	add := func(iv int64, v int64, locs ...*profile.Location) {
		s := &profile.Sample{Value: []int64{v, v * 10}, Location: locs}
		s.NumLabel = map[string][]int64{IntervalLabel: {iv}}
		p.Sample = append(p.Sample, s)
	}
	add(100, 60, lSys, lHot, lWork, lMain)
	add(100, 30, lCold, lWork, lMain)
	add(160, 9, lMemcpy, lAnon, lMain)
	add(160, 1, lHot, lWork, lMain)
	if err := p.CheckValid(); err != nil {
		t.Fatal(err)
	}
	return p
}

func find(n *Node, names ...string) *Node {
	for _, name := range names {
		var next *Node
		for _, c := range n.Kids {
			if c.Name == name {
				next = c
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

func TestBuildWholeTask(t *testing.T) {
	// Through encode/merge/parse, as the extension stores it.
	var buf bytes.Buffer
	if err := testProfile(t).Write(&buf); err != nil {
		t.Fatal(err)
	}
	p, err := profile.ParseData(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Build(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.SampleType != "cpu" || tr.Unit != "nanoseconds" || tr.Root.Value != 1000 {
		t.Fatalf("tree %s/%s total %d, want cpu/nanoseconds 1000", tr.SampleType, tr.Unit, tr.Root.Value)
	}
	if n := find(tr.Root, "main.main", "main.work", "main.hot", "do_syscall_64"); n == nil || n.Value != 600 || n.Type != "kernel" {
		t.Fatalf("kernel leaf %+v", n)
	}
	if n := find(tr.Root, "main.main", "main.work"); n == nil || n.Value != 910 || n.Type != "go" || len(n.Kids) != 2 || n.Kids[0].Name != "main.cold" {
		t.Fatalf("main.work %+v (children sorted by name)", n)
	}
	// The inlined function sits below its caller on the same location.
	if n := find(tr.Root, "main.main", "main.work", "main.cold", "main.inlined"); n == nil || n.Value != 300 {
		t.Fatalf("inlined %+v", n)
	}
	if n := find(tr.Root, "main.main", "0xdead", "memcpy"); n == nil || n.Type != "native" || n.Value != 90 {
		t.Fatalf("native under an unmapped frame %+v", n)
	}
	if len(tr.Intervals) != 2 || tr.Intervals[0].Unix() != 100 || tr.Intervals[1].Unix() != 160 {
		t.Fatalf("intervals %v", tr.Intervals)
	}
	if _, err := json.Marshal(tr); err != nil {
		t.Fatal(err)
	}
}

func TestBuildOneInterval(t *testing.T) {
	tr, err := Build(testProfile(t), Options{Interval: time.Unix(160, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Root.Value != 100 || find(tr.Root, "main.main", "main.work", "main.cold") != nil {
		t.Fatalf("interval 160: total %d, tree %+v", tr.Root.Value, tr.Root.Kids)
	}
	if len(tr.Intervals) != 2 {
		t.Fatalf("intervals %v: every interval stays listed", tr.Intervals)
	}
}

func TestBuildFoldsSmallNodes(t *testing.T) {
	// The 90 under the unmapped frame is below 20% of 1000: folded into
	// main.main, whose value keeps it.
	tr, err := Build(testProfile(t), Options{MinFraction: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	if find(tr.Root, "main.main", "0xdead") != nil || tr.Folded == 0 {
		t.Fatalf("90/1000 kept at min 20%%: %+v folded %d", tr.Root.Kids[0].Kids, tr.Folded)
	}
	if tr.Root.Kids[0].Value != 1000 {
		t.Fatalf("folded value lost: main.main %d", tr.Root.Kids[0].Value)
	}
	tr, _ = Build(testProfile(t), Options{MaxNodes: 3})
	if tr.Nodes != 3 {
		t.Fatalf("max nodes 3: %d", tr.Nodes)
	}
}

func TestFrameTypesOfJITNames(t *testing.T) {
	for name, want := range map[string]string{
		"JS:*handler /app/server.js:10":   "v8js",
		"LazyCompile:~main /app/x.js:1":   "v8js",
		"Ljava/lang/Thread;::run":         "jvm",
		"java.util.HashMap::get":          "jvm",
		"py::compute (/app/worker.py:12)": "cpython",
		"some_unmapped_native_thing":      "native",
	} {
		if got := frameType(&profile.Location{}, name); got != want {
			t.Errorf("%q: %s, want %s", name, got, want)
		}
	}
}

func TestBuildRejectsEmpty(t *testing.T) {
	if _, err := Build(&profile.Profile{}, Options{}); err == nil {
		t.Fatal("no error for a profile without sample types")
	}
}

func TestFromProfileKeepsFrameTypesAndIntervals(t *testing.T) {
	libc := &profiles.Mapping{File: "/usr/lib/libc.so.6", Start: 0x1000}
	p := &profiles.Profile{
		Kind: profiles.OnCPU(100), // 10 ms per sample
		Samples: []profiles.Sample{
			{Value: 3, Frames: []profiles.Frame{
				{Function: "do_syscall_64", Type: profiles.FrameKernel},
				{Function: "Ljava/lang/Thread;::run", Type: profiles.FrameJVM},
				{Address: 0x1234, Mapping: libc, Type: profiles.FrameNative},
			}},
			{Value: 1, Frames: []profiles.Frame{
				{Function: "handler", Type: profiles.FrameV8JS},
				{Address: 0x1234, Mapping: libc, Type: profiles.FrameNative},
			}},
		},
	}
	tr, err := FromProfile(p, []int64{100, 160}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.SampleType != "cpu" || tr.Unit != "nanoseconds" || tr.Root.Value != 40_000_000 {
		t.Fatalf("%s/%s %d: want cpu/nanoseconds 40ms", tr.SampleType, tr.Unit, tr.Root.Value)
	}
	if n := find(tr.Root, "libc.so.6+0x234", "Ljava/lang/Thread;::run", "do_syscall_64"); n == nil || n.Type != "kernel" || n.Value != 30_000_000 {
		t.Fatalf("kernel leaf %+v", n)
	}
	if n := find(tr.Root, "libc.so.6+0x234", "handler"); n == nil || n.Type != "v8js" {
		t.Fatalf("v8js frame %+v (the type comes from the frame, not its name)", n)
	}
	tr, _ = FromProfile(p, []int64{100, 160}, Options{Interval: time.Unix(160, 0)})
	if tr.Root.Value != 10_000_000 || len(tr.Intervals) != 2 {
		t.Fatalf("interval 160: %d, intervals %v", tr.Root.Value, tr.Intervals)
	}
	off := &profiles.Profile{Kind: profiles.OffCPU(), Samples: []profiles.Sample{{Value: 5e6, Frames: []profiles.Frame{{Function: "futex_wait", Type: profiles.FrameKernel}}}}}
	if tr, _ = FromProfile(off, nil, Options{}); tr.SampleType != "off_cpu" || tr.Unit != "nanoseconds" || tr.Root.Value != 5e6 {
		t.Fatalf("off-CPU: %s/%s %d", tr.SampleType, tr.Unit, tr.Root.Value)
	}
}
