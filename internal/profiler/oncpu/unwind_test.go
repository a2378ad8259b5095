//go:build linux

package oncpu

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/stackprof"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

var callerNames = []string{"caller_a", "caller_b", "caller_c"}

// startUnwound samples proc with opts and returns the subscription once the
// process's unwind tables are built (samples before use frame pointers)
// and what came before is drained. Everything is closed at cleanup.
func startUnwound(t *testing.T, opts Options, proc *workload.Process) *stackprof.Subscription[Count] {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("open sampler: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	sub, err := s.Add(proc.PID())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	if !s.k.uw.Unwinder.Wait(proc.PID(), 20*time.Second) {
		t.Fatal("unwind tables not built within 20s")
	}
	sub.Drain()
	return sub
}

// collectSamples drains sub every second until it has min samples (a busy
// machine gives the workload less CPU), for 10 s at most.
func collectSamples(t *testing.T, sub *stackprof.Subscription[Count], sym *symbolize.Symbolizer, min uint64) *profiles.Profile {
	t.Helper()
	p := &profiles.Profile{}
	for i := 0; i < 10 && uint64(p.Total()) < min; i++ {
		time.Sleep(time.Second)
		b, err := sub.Drain()
		if err != nil {
			t.Fatal(err)
		}
		p.Samples = append(p.Samples, b.Profile(sym, nil, nil).Samples...)
	}
	return p
}

// callerShares is, among stacks holding leaf, the fraction that holds each
// of callerNames; stacks are lists of function names, with a count.
func callerShares(stacks map[string]int64) (shares []float64, withLeaf int64) {
	hits := make([]int64, len(callerNames))
	for st, n := range stacks {
		fns := strings.Split(st, ";")
		if !contains(fns, "leaf") {
			continue
		}
		withLeaf += n
		for i, c := range callerNames {
			if contains(fns, c) {
				hits[i] += n
			}
		}
	}
	for _, h := range hits {
		shares = append(shares, float64(h)/float64(max(withLeaf, 1)))
	}
	return shares, withLeaf
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// perfDwarf records pid with `perf record --call-graph dwarf` for d and
// returns its stacks as function-name lists (leaf first, ";"-joined).
func perfDwarf(t *testing.T, pid, freq int, d time.Duration) map[string]int64 {
	t.Helper()
	perf, err := exec.LookPath("perf")
	if err != nil {
		t.Skip("perf is not installed")
	}
	data := filepath.Join(t.TempDir(), "perf.data")
	rec := exec.Command(perf, "record", "-q", "-F", fmt.Sprint(freq), "--call-graph", "dwarf", "-p", fmt.Sprint(pid), "-o", data, "--", "sleep", fmt.Sprint(d.Seconds()))
	if out, err := rec.CombinedOutput(); err != nil {
		t.Fatalf("perf record: %v\n%s", err, out)
	}
	out, err := exec.Command(perf, "script", "-i", data, "-F", "ip,sym").Output()
	if err != nil {
		t.Fatalf("perf script: %v", err)
	}
	stacks := map[string]int64{}
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			stacks[strings.Join(cur, ";")]++
		}
		cur = cur[:0]
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			flush()
			continue
		}
		if len(f) >= 2 {
			cur = append(cur, f[1])
		} else {
			cur = append(cur, "[unknown]")
		}
	}
	flush()
	return stacks
}

func namesOf(p *profiles.Profile) map[string]int64 {
	stacks := map[string]int64{}
	for _, s := range p.Samples {
		var fns []string
		for _, f := range s.Frames {
			if f.Type != profiles.FrameKernel {
				fns = append(fns, f.Function)
			}
		}
		stacks[strings.Join(fns, ";")] += s.Value
	}
	return stacks
}

// TestCallersWithoutFramePointers: a hot leaf called 6:3:1 from three
// callers, in a binary built with gcc's defaults (no frame pointers). The
// callers' shares must match perf's DWARF unwinding of the same process in
// the same run within 3 points.
func TestCallersWithoutFramePointers(t *testing.T) {
	requireEBPF(t)
	bin := workload.BuildCDefault(t, "callers.c")
	proc := workload.Start(t, bin, "cpu")
	// Both at 499 Hz for a few thousand samples: at ±3 points the
	// comparison must not be decided by sampling noise.
	const freq = 499
	sub := startUnwound(t, Options{Frequency: freq}, proc)
	sym := symbolize.New(symbolize.Options{})

	// Rounds of both at once until each has enough samples (a busy
	// machine gives the workload less CPU).
	const d = 6 * time.Second
	ours, theirs := map[string]int64{}, map[string]int64{}
	var got, want []float64
	var n, pn int64
	for round := 0; round < 5 && (n < 1500 || pn < 1500); round++ {
		perfStacks := make(chan map[string]int64, 1)
		go func() { perfStacks <- perfDwarf(t, proc.PID(), freq, d) }()
		time.Sleep(d)
		b, err := sub.Drain()
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range namesOf(b.Profile(sym, nil, nil)) {
			ours[k] += v
		}
		for k, v := range <-perfStacks {
			theirs[k] += v
		}
		got, n = callerShares(ours)
		want, pn = callerShares(theirs)
	}
	t.Logf("contprof: %d samples with leaf, callers %.1f/%.1f/%.1f%%", n, 100*got[0], 100*got[1], 100*got[2])
	t.Logf("perf --call-graph dwarf: %d samples with leaf, callers %.1f/%.1f/%.1f%%", pn, 100*want[0], 100*want[1], 100*want[2])
	if n < 1500 || pn < 1500 {
		t.Fatalf("too few samples: %d ours, %d perf's", n, pn)
	}
	for i := range callerNames {
		if math.Abs(got[i]-want[i]) > 0.03 {
			t.Errorf("%s: %.1f%% of the leaf's samples, perf says %.1f%% (want within 3 points)", callerNames[i], 100*got[i], 100*want[i])
		}
	}
	if got[0]+got[1]+got[2] < 0.95 {
		t.Errorf("callers found for only %.1f%% of the leaf's samples", 100*(got[0]+got[1]+got[2]))
	}
}

// TestDeepStack: a stack of more than 100 frames without frame pointers
// comes out whole; with a limit of 64 frames it ends in [truncated].
func TestDeepStack(t *testing.T) {
	requireEBPF(t)
	bin := workload.BuildCDefault(t, "callers.c")
	for _, tc := range []struct {
		maxFrames int
		truncated bool
	}{{127, false}, {64, true}} {
		proc := workload.Start(t, bin, "deep", "100")
		sub := startUnwound(t, Options{UnwindOptions: stackprof.UnwindOptions{MaxFrames: tc.maxFrames}}, proc)
		p := collectSamples(t, sub, symbolize.New(symbolize.Options{}), 100)
		var good, all int64
		for _, smp := range p.Samples {
			rec, last := 0, ""
			for _, f := range smp.Frames {
				if f.Function == "recurse" {
					rec++
				}
				last = f.Function
			}
			all += smp.Value
			switch {
			case tc.truncated && last == profiles.TruncatedFrame && rec >= 60:
				good += smp.Value
			case !tc.truncated && rec >= 100 && last != profiles.TruncatedFrame && contains(names(smp.Frames), "main"):
				good += smp.Value
			}
		}
		t.Logf("max %d frames: %d of %d samples as expected", tc.maxFrames, good, all)
		if all < 50 || float64(good) < 0.9*float64(all) {
			t.Errorf("max %d frames: only %d of %d samples have the expected stack", tc.maxFrames, good, all)
		}
		sub.Close()
		proc.Stop()
	}
}

func names(frames []profiles.Frame) []string {
	var out []string
	for _, f := range frames {
		out = append(out, f.Function)
	}
	return out
}

// TestGoCgo: Go calling C through cgo, the C code built with cgo's default
// flags (no frame pointers) and running on the system stack. The stacks
// must hold the C frames and the Go frames above them.
func TestGoCgo(t *testing.T) {
	requireEBPF(t)
	bin := workload.BuildGo(t, "cgocall")
	proc := workload.Start(t, bin)
	sub := startUnwound(t, Options{}, proc)
	p := collectSamples(t, sub, symbolize.New(symbolize.Options{}), 150)
	want := []string{"c_leaf", "c_mid", "main.goCaller", "main.main"}
	var inLeaf, whole int64
	for _, smp := range p.Samples {
		fns := names(smp.Frames)
		if indexOf(fns, "c_leaf") < 0 {
			continue
		}
		inLeaf += smp.Value
		at, ok := 0, true
		for _, w := range want {
			i := indexOf(fns[at:], w)
			if i < 0 {
				ok = false
				break
			}
			at += i
		}
		if ok {
			whole += smp.Value
		} else if inLeaf-smp.Value < 20 {
			t.Logf("incomplete: %s", strings.Join(fns, " <- "))
		}
	}
	t.Logf("%d samples in c_leaf, %d with %v in order", inLeaf, whole, want)
	if inLeaf < 100 || float64(whole) < 0.9*float64(inLeaf) {
		t.Errorf("%d of %d samples in c_leaf have the whole Go -> C stack", whole, inLeaf)
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}
