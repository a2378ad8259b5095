//go:build linux

package offcpu

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pprofiletest"
	"golang.org/x/sys/unix"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/testhelper/proftest"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

func requireEBPF(t testing.TB) {
	t.Helper()
	proftest.RequireEBPF(t, "the off-CPU profiler")
}

// feedPeriod is how often the test writes a byte the workload's wait_short
// reads; the workload sleeps 60 ms in wait_long after each byte.
const feedPeriod = 80 * time.Millisecond

// startFed starts an offcpu/offgo workload on a new FIFO and feeds it one
// byte every period until the test ends (closing the FIFO ends the
// workload).
func startFed(t *testing.T, bin string, period time.Duration, args ...string) *workload.Process {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "feed")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	proc := workload.Start(t, bin, append([]string{fifo}, args...)...)
	opened := make(chan *os.File, 1)
	go func() {
		// Blocks until the workload opens the FIFO for reading.
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			close(opened)
			return
		}
		opened <- f
	}()
	var w *os.File
	select {
	case w = <-opened:
		if w == nil {
			t.Fatalf("open %s for writing failed", fifo)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%v did not open its FIFO", proc)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := w.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
		_ = w.Close()
	})
	return proc
}

// share is the fraction of the profile's value whose stack holds a frame
// matching re, among the samples whose stack holds a frame matching among
// (nil: all samples).
func share(p *profiles.Profile, re, among *regexp.Regexp) float64 {
	has := func(s profiles.Sample, re *regexp.Regexp) bool {
		for _, f := range s.Frames {
			if re.MatchString(f.Function) {
				return true
			}
		}
		return false
	}
	var hit, total int64
	for _, s := range p.Samples {
		if among != nil && !has(s, among) {
			continue
		}
		total += s.Value
		if has(s, re) {
			hit += s.Value
		}
	}
	if total == 0 {
		return 0
	}
	return float64(hit) / float64(total)
}

func dump(t *testing.T, p *profiles.Profile, n int) {
	t.Helper()
	var b strings.Builder
	for i, s := range p.Samples {
		if i == n {
			break
		}
		fmt.Fprintf(&b, "%v:", time.Duration(s.Value))
		for _, f := range s.Frames {
			fmt.Fprintf(&b, " %s(%s)", f.Function, f.Type)
		}
		b.WriteString("\n")
	}
	t.Logf("top stacks:\n%s", b.String())
}

// record profiles pid: a warm-up drain after warm (so that the measured
// window starts at an arbitrary phase of the workload), then drains every
// second for d, merged into one profile.
func record(t *testing.T, s *Profiler, pid int, warm, d time.Duration) *profiles.Profile {
	t.Helper()
	sub, err := s.Add(pid)
	if err != nil {
		t.Fatalf("add pid: %v", err)
	}
	defer sub.Close()
	sym := symbolize.New(symbolize.Options{})
	if err := sym.Preload(pid); err != nil {
		t.Fatalf("preload: %v", err)
	}
	time.Sleep(warm)
	if _, err := sub.Drain(); err != nil {
		t.Fatal(err)
	}
	task := control.Task{
		ID: "task-1", Policy: "slow", Target: policy.TargetOffCPU,
		Causes: []control.Cause{{Monitor: policy.MonitorHTTPAvgResponseTime, Threshold: 100, Period: 5, Count: 3, Values: []float64{120, 150, 180}}},
	}
	res := map[string]any{"process.pid": int64(pid)}
	var p *profiles.Profile
	for end := time.Now().Add(d); time.Now().Before(end); {
		time.Sleep(time.Second)
		b, err := sub.Drain()
		if err != nil {
			t.Fatalf("drain: %v", err)
		}
		bp := b.Profile(sym, res, profiles.TaskAttributes(task))
		if p == nil {
			p = bp
		} else {
			p.Samples = append(p.Samples, bp.Samples...)
			p.End = bp.End
		}
	}
	return p
}

func checkShare(t *testing.T, p *profiles.Profile, fn string, among *regexp.Regexp, want float64) {
	t.Helper()
	got := share(p, regexp.MustCompile(`^`+regexp.QuoteMeta(fn)+`$`), among)
	t.Logf("%s: %.1f%% of the off-CPU time (want %.0f%% ± 5)", fn, 100*got, 100*want)
	if math.Abs(got-want) > 0.05 {
		t.Errorf("%s has %.1f%% of the off-CPU time, want %.0f%% ± 5 points", fn, 100*got, 100*want)
	}
}

// kernelPath checks that the samples under fn have kernel frames matching
// re (the kernel side of where the thread blocked).
func kernelPath(t *testing.T, p *profiles.Profile, fn string, re *regexp.Regexp) {
	t.Helper()
	var under, with int64
	for _, s := range p.Samples {
		var hasFn, hasK bool
		for _, f := range s.Frames {
			hasFn = hasFn || f.Function == fn
			hasK = hasK || (f.Type == profiles.FrameKernel && re.MatchString(f.Function))
		}
		if hasFn {
			under += s.Value
			if hasK {
				with += s.Value
			}
		}
	}
	if under == 0 || float64(with)/float64(under) < 0.9 {
		t.Errorf("%s: %v of %v off-CPU time has kernel frames matching %v, want nearly all", fn, time.Duration(with), time.Duration(under), re)
	}
}

func checkFormats(t *testing.T, p *profiles.Profile) {
	t.Helper()
	if p.Kind != profiles.OffCPU() {
		t.Errorf("kind %+v, want off-CPU (off_cpu/nanoseconds)", p.Kind)
	}
	otlp := profiles.ToPprofile("github.com/contprof/contprof", p)
	prof := otlp.ResourceProfiles().At(0).ScopeProfiles().At(0).Profiles().At(0)
	if err := pprofiletest.ValidateProfile(otlp.Dictionary(), prof); err != nil {
		t.Errorf("OTLP profile of a real recording is invalid: %v", err)
	}
	st := prof.SampleType()
	if typ, unit := otlp.Dictionary().StringTable().At(int(st.TypeStrindex())), otlp.Dictionary().StringTable().At(int(st.UnitStrindex())); typ != "off_cpu" || unit != "nanoseconds" {
		t.Errorf("OTLP sample type %s/%s, want off_cpu/nanoseconds", typ, unit)
	}
	pp := p.Pprof()
	if err := pp.CheckValid(); err != nil {
		t.Errorf("pprof profile is invalid: %v", err)
	}
	if len(pp.SampleType) != 1 || pp.SampleType[0].Type != "off_cpu" || pp.SampleType[0].Unit != "nanoseconds" {
		t.Errorf("pprof sample types %+v, want off_cpu/nanoseconds", pp.SampleType)
	}
}

func TestAttributionC(t *testing.T) {
	requireEBPF(t)
	proc := startFed(t, workload.BuildC(t, "offcpu.c"), feedPeriod)
	s, err := Open(Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	p := record(t, s, proc.PID(), time.Second, 5*time.Second)
	dump(t, p, 5)
	checkShare(t, p, "wait_long", nil, 0.75)
	checkShare(t, p, "wait_short", nil, 0.25)
	kernelPath(t, p, "wait_long", regexp.MustCompile(`nanosleep`))
	kernelPath(t, p, "wait_short", regexp.MustCompile(`pipe_read`))
	// One thread, nearly always blocked: its off-CPU time is about the
	// length of the window (whole blocks ending in it are counted).
	window := p.End.Sub(p.Start)
	if got := time.Duration(p.Total()); got < window*85/100 || got > window*110/100 {
		t.Errorf("off-CPU time %v in a window of %v, want about the window", got, window)
	}
	for _, smp := range p.Samples {
		for _, f := range smp.Frames {
			if f.Function == "wait_long" && (f.Type != profiles.FrameNative || f.Mapping == nil || f.Mapping.BuildID == "") {
				t.Fatalf("wait_long frame: type %q mapping %+v, want native with a build id", f.Type, f.Mapping)
			}
		}
	}
	if p.Attributes[profiles.AttrTarget] != "off_cpu" || p.Resource["process.pid"] != int64(proc.PID()) {
		t.Errorf("attributes %v resource %v: want the task's", p.Attributes, p.Resource)
	}
	checkFormats(t, p)
}

// A Go worker locked to its thread blocks in syscalls on its own stack:
// the Go frames show with file and line. The rest of the process (sysmon,
// idle Ms, the main goroutine parked on a channel) blocks in the runtime's
// futex waits, under runtime frames only.
func TestAttributionGo(t *testing.T) {
	requireEBPF(t)
	proc := startFed(t, workload.BuildGo(t, "offgo"), feedPeriod)
	s, err := Open(Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	p := record(t, s, proc.PID(), time.Second, 5*time.Second)
	dump(t, p, 8)
	worker := regexp.MustCompile(`^main\.worker$`)
	checkShare(t, p, "main.waitLong", worker, 0.75)
	checkShare(t, p, "main.waitShort", worker, 0.25)
	var waitLong, runtimeWait bool
	for _, smp := range p.Samples {
		for _, f := range smp.Frames {
			switch f.Function {
			case "main.waitLong":
				waitLong = true
				if f.Type != profiles.FrameGo || !strings.HasSuffix(f.File, "main.go") || f.Line == 0 {
					t.Fatalf("main.waitLong frame: type %q file %q line %d, want a go frame with file:line", f.Type, f.File, f.Line)
				}
			case "runtime.notesleep", "runtime.notetsleep_internal":
				runtimeWait = runtimeWait || f.Type == profiles.FrameGo
			}
		}
	}
	if !waitLong || !runtimeWait {
		t.Errorf("want main.waitLong and the runtime's futex waits (runtime.notesleep) in the profile: %v %v", waitLong, runtimeWait)
	}
	if share(p, regexp.MustCompile(`^main\.waitOnChannel$`), nil) > 0 {
		t.Log("the goroutine parked on a channel shows: the note in offgo/main.go is stale")
	}
	checkFormats(t, p)
}

// Blocks shorter than MinBlock are not counted: with 40 ms, wait_short's
// ~20 ms blocks vanish and wait_long's ~60 ms ones stay.
func TestMinBlock(t *testing.T) {
	requireEBPF(t)
	const minBlock = 40 * time.Millisecond
	proc := startFed(t, workload.BuildC(t, "offcpu.c"), feedPeriod)
	s, err := Open(Options{MinBlock: minBlock})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	sub, err := s.Add(proc.PID())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sym := symbolize.New(symbolize.Options{})
	if err := sym.Preload(proc.PID()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	b, err := sub.Drain()
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range b.Samples {
		v := rs.Value
		if v.Blocks == 0 || time.Duration(v.Nanoseconds/v.Blocks) < minBlock {
			t.Errorf("a stack with %d blocks averaging %v: every counted block must be at least %v", v.Blocks, time.Duration(v.Nanoseconds/max(v.Blocks, 1)), minBlock)
		}
	}
	p := b.Profile(sym, nil, nil)
	long, short := share(p, regexp.MustCompile(`^wait_long$`), nil), share(p, regexp.MustCompile(`^wait_short$`), nil)
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wait_long %.3f wait_short %.3f, stats %+v", long, short, st)
	// A wait_short block reaches 40 ms only when the feeder or the wake-up
	// is 20 ms late, which a loaded machine does now and then.
	if long < 0.9 || short > 0.1 || st.ShortBlocks < st.Blocks/2 {
		t.Errorf("min_block 40ms: wait_long %.3f wait_short %.3f, %d short blocks of %d; want wait_short's blocks dropped", long, short, st.ShortBlocks, st.Blocks+st.ShortBlocks)
	}
}

// A thread blocked across many drains (buffer flips that clear the stack
// maps) keeps its stacks: when it finally wakes, its block is counted in
// full under the right frames; and the stack maps do not grow.
func TestLongBlockAcrossDrains(t *testing.T) {
	requireEBPF(t)
	proc := startFed(t, workload.BuildC(t, "offcpu.c"), time.Hour) // never fed by the ticker
	fifoWriter := openFeed(t, proc)
	s, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sub, err := s.Add(proc.PID())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sym := symbolize.New(symbolize.Options{})
	if err := sym.Preload(proc.PID()); err != nil {
		t.Fatal(err)
	}
	// Wake it once so that its next read blocks while we record.
	fifoWriter([]byte{'x'})
	time.Sleep(200 * time.Millisecond) // the 60 ms sleep ends, the read blocks
	if _, err := sub.Drain(); err != nil {
		t.Fatal(err)
	}
	blockedAt := time.Now()
	for i := 0; i < 8; i++ {
		time.Sleep(150 * time.Millisecond)
		b, err := sub.Drain()
		if err != nil {
			t.Fatal(err)
		}
		if b.Total() != 0 {
			t.Fatalf("drain %d while the thread is blocked: %v off-CPU, want none (counted when it ends)", i, time.Duration(b.Total()))
		}
	}
	fifoWriter([]byte{'x'})
	blocked := time.Since(blockedAt)
	time.Sleep(30 * time.Millisecond) // inside the next 60 ms sleep
	b, err := sub.Drain()
	if err != nil {
		t.Fatal(err)
	}
	p := b.Profile(sym, nil, nil)
	dump(t, p, 3)
	var got time.Duration
	for _, smp := range p.Samples {
		for _, f := range smp.Frames {
			if f.Function == "wait_short" {
				got += time.Duration(smp.Value)
			}
		}
	}
	if got < blocked-50*time.Millisecond || got > blocked+300*time.Millisecond {
		t.Errorf("wait_short: %v off-CPU, want the %v the thread was blocked, symbolized", got, blocked)
	}
	for i := uint32(0); i < 2; i++ {
		stacks := s.k.buf.Stacks[i]
		if n := countEntries(t, stacks); n > 8 {
			t.Errorf("stack map %d holds %d stacks after the drains, want a handful", i, n)
		}
	}
}

func countEntries(t *testing.T, m *ebpf.Map) int {
	t.Helper()
	var (
		k uint32
		n int
	)
	v := make([]byte, m.ValueSize())
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// openFeed returns a writer for the workload's FIFO: startFed with a long
// period leaves the feeding to the test. It reopens the FIFO for writing
// (a FIFO may have several writers).
func openFeed(t *testing.T, proc *workload.Process) func([]byte) {
	t.Helper()
	fifo := proc.Cmd.Args[1]
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return func(b []byte) {
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
}

// DrainFinal adds the threads still blocked: a thread blocked for the whole
// task shows in the task's last profile.
func TestDrainFinalBlocked(t *testing.T) {
	requireEBPF(t)
	proc := startFed(t, workload.BuildC(t, "offcpu.c"), time.Hour)
	s, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	time.Sleep(100 * time.Millisecond) // blocked in its first read before we start
	sub, err := s.Add(proc.PID())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	start := time.Now()
	time.Sleep(700 * time.Millisecond)
	b, err := sub.Drain()
	if err != nil || b.Total() != 0 {
		t.Fatalf("drain: %v, %v off-CPU; want none (the thread was off the CPU before the profiler saw it leave)", err, time.Duration(b.Total()))
	}
	// The thread went off the CPU before it was a target, so it has no
	// start entry: wake it once so that its next block is recorded.
	openFeed(t, proc)([]byte{'x'})
	time.Sleep(400 * time.Millisecond) // 60 ms sleep, then blocked in read
	b, err = sub.DrainFinal()
	if err != nil {
		t.Fatal(err)
	}
	p := b.Profile(symbolize.New(symbolize.Options{}), nil, nil)
	dump(t, p, 3)
	short := time.Duration(0)
	for _, smp := range p.Samples {
		for _, f := range smp.Frames {
			if f.Function == "wait_short" {
				short += time.Duration(smp.Value)
			}
		}
	}
	// wait_long's ~60 ms ended; wait_short has been blocked ~340 ms.
	if short < 250*time.Millisecond || short > time.Since(start) {
		t.Errorf("final drain: wait_short %v, want the ~340 ms the thread has been blocked so far", short)
	}
}
