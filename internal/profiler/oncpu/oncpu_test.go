//go:build linux

package oncpu

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pprofiletest"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/testhelper/proftest"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

func requireEBPF(t testing.TB) {
	t.Helper()
	proftest.RequireEBPF(t, "the on-CPU sampler")
}

// share is the fraction of the profile's samples whose stack holds a frame
// whose function matches re.
func share(p *profiles.Profile, re *regexp.Regexp) float64 {
	var hit int64
	for _, s := range p.Samples {
		for _, f := range s.Frames {
			if re.MatchString(f.Function) {
				hit += s.Value
				break
			}
		}
	}
	if p.Total() == 0 {
		return 0
	}
	return float64(hit) / float64(p.Total())
}

// profileWorkload samples bin at freq Hz until it has freq×d samples (a
// busy machine gives the workload less CPU, so this may take longer than
// d, up to 5×d) and returns the symbolized profile.
func profileWorkload(t *testing.T, bin string, freq int, d time.Duration) (*profiles.Profile, *workload.Process) {
	t.Helper()
	proc := workload.Start(t, bin)
	s, err := Open(Options{Frequency: freq})
	if err != nil {
		t.Fatalf("open sampler: %v", err)
	}
	defer s.Close()
	sub, err := s.Add(proc.PID())
	if err != nil {
		t.Fatalf("add pid: %v", err)
	}
	defer sub.Close()
	sym := symbolize.New(symbolize.Options{})
	if err := sym.Preload(proc.PID()); err != nil {
		t.Fatalf("preload: %v", err)
	}
	task := control.Task{
		ID: "task-1", Policy: "cpu-hot", Target: policy.TargetOnCPU,
		Causes: []control.Cause{{Monitor: policy.MonitorProcessCPU, Threshold: 40, Period: 5, Count: 3, Values: []float64{95, 97, 99}}},
	}
	res := map[string]any{"process.pid": int64(proc.PID()), "process.executable.name": filepath.Base(bin)}
	freq = s.Frequency()
	want := uint64(float64(freq) * d.Seconds())
	var p *profiles.Profile
	var total uint64
	deadline := time.Now().Add(5 * d)
	for total < want && time.Now().Before(deadline) {
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
		total += b.Total()
	}
	if total < want/3 {
		t.Fatalf("got %d samples in %v at %d Hz, want at least %d", total, p.End.Sub(p.Start), freq, want/3)
	}
	t.Logf("%s: %d samples in %v, %d stacks", filepath.Base(bin), total, p.End.Sub(p.Start).Round(time.Millisecond), len(p.Samples))
	return p, proc
}

func checkShare(t *testing.T, p *profiles.Profile, fn string, want float64) {
	t.Helper()
	got := share(p, regexp.MustCompile(`^`+regexp.QuoteMeta(fn)+`$`))
	t.Logf("%s: %.1f%% (want %.0f%% ± 5)", fn, 100*got, 100*want)
	if math.Abs(got-want) > 0.05 {
		t.Errorf("%s has %.1f%% of the samples, want %.0f%% ± 5 points", fn, 100*got, 100*want)
	}
}

// pprofTop writes p as a pprof file and returns the cum% that
// `go tool pprof -top` shows for each function: the share of samples with
// the function on the stack, including the kernel frames of interrupts
// taken while it ran (a VM's timer skew lands many samples there).
func pprofTop(t *testing.T, p *profiles.Profile) map[string]float64 {
	t.Helper()
	pp := p.Pprof()
	if err := pp.CheckValid(); err != nil {
		t.Fatalf("pprof profile is invalid: %v", err)
	}
	file := filepath.Join(t.TempDir(), "cpu.pb.gz")
	var buf bytes.Buffer
	if err := pp.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "tool", "pprof", "-top", "-nodecount=100", file).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof -top: %v\n%s", err, out)
	}
	// "     1.85s 74.60% 74.60%      1.87s 75.32%  hot_a"
	row := regexp.MustCompile(`^\s*\S+\s+[\d.]+%\s+[\d.]+%\s+\S+\s+([\d.]+)%\s+(.+?)\s*$`)
	cum := map[string]float64{}
	for _, line := range strings.Split(string(out), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			cum[m[2]] = v
		}
	}
	t.Logf("go tool pprof -top:\n%s", out)
	return cum
}

func checkTop(t *testing.T, cum map[string]float64, fn string, want float64) {
	t.Helper()
	got, ok := cum[fn]
	if !ok {
		t.Errorf("go tool pprof -top does not list %s", fn)
		return
	}
	if math.Abs(got-want) > 5 {
		t.Errorf("go tool pprof -top: %s cum %.2f%%, want %.0f%% ± 5", fn, got, want)
	}
}

func checkOTLP(t *testing.T, p *profiles.Profile) {
	t.Helper()
	otlp := profiles.ToPprofile("github.com/contprof/contprof", p)
	prof := otlp.ResourceProfiles().At(0).ScopeProfiles().At(0).Profiles().At(0)
	if err := pprofiletest.ValidateProfile(otlp.Dictionary(), prof); err != nil {
		t.Errorf("OTLP profile of a real sample is invalid: %v", err)
	}
	if got := prof.Samples().Len(); got != len(p.Samples) {
		t.Errorf("OTLP profile has %d samples, want %d", got, len(p.Samples))
	}
}

const attributionHz = 499 // more samples than 99 Hz in a short test: ±5 points is then > 5 sigma

func TestAttributionC(t *testing.T) {
	requireEBPF(t)
	bin := workload.BuildC(t, "hotcpu.c")
	p, _ := profileWorkload(t, bin, attributionHz, 4*time.Second)
	checkShare(t, p, "hot_a", 0.75)
	checkShare(t, p, "hot_b", 0.25)
	for _, s := range p.Samples {
		for _, f := range s.Frames {
			if f.Function == "hot_a" && (f.Type != profiles.FrameNative || f.Mapping == nil || f.Mapping.BuildID == "") {
				t.Fatalf("hot_a frame: type %q mapping %+v, want native with a build id", f.Type, f.Mapping)
			}
		}
	}
	flat := pprofTop(t, p)
	checkTop(t, flat, "hot_a", 75)
	checkTop(t, flat, "hot_b", 25)
	checkOTLP(t, p)
}

func TestAttributionGo(t *testing.T) {
	requireEBPF(t)
	bin := workload.BuildGo(t, "hotgo")
	p, _ := profileWorkload(t, bin, attributionHz, 4*time.Second)
	checkShare(t, p, "main.hotA", 0.75)
	checkShare(t, p, "main.hotB", 0.25)
	for _, s := range p.Samples {
		for _, f := range s.Frames {
			if f.Function == "main.hotA" && (f.Type != profiles.FrameGo || !strings.HasSuffix(f.File, "main.go") || f.Line == 0) {
				t.Fatalf("main.hotA frame: type %q file %q line %d, want a go frame with file:line", f.Type, f.File, f.Line)
			}
		}
	}
	flat := pprofTop(t, p)
	checkTop(t, flat, "main.hotA", 75)
	checkTop(t, flat, "main.hotB", 25)
	checkOTLP(t, p)
}

// At the default 99 Hz the profile still has the right shape; fewer samples,
// so only the order and rough split are checked.
func TestDefaultFrequency(t *testing.T) {
	requireEBPF(t)
	bin := workload.BuildC(t, "hotcpu.c")
	p, _ := profileWorkload(t, bin, 0, 3*time.Second)
	if p.Kind.Period != int64(time.Second)/DefaultFrequency {
		t.Errorf("period %d, want %d", p.Kind.Period, int64(time.Second)/DefaultFrequency)
	}
	a, b := share(p, regexp.MustCompile(`^hot_a$`)), share(p, regexp.MustCompile(`^hot_b$`))
	if a < 0.6 || b < 0.1 || a+b < 0.9 {
		t.Errorf("hot_a %.2f hot_b %.2f: want about 0.75 and 0.25", a, b)
	}
}

// A process that spends its time in the kernel yields symbolized kernel
// frames on top of its user frames.
func TestKernelStacks(t *testing.T) {
	requireEBPF(t)
	cmd := exec.Command("dd", "if=/dev/zero", "of=/dev/null", "bs=1M", "count=1000000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	s, err := Open(Options{Frequency: 499})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sub, err := s.Add(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	b, err := sub.Drain()
	if err != nil {
		t.Fatal(err)
	}
	p := b.Profile(symbolize.New(symbolize.Options{}), nil, nil)
	var kernel, total int64
	for _, smp := range p.Samples {
		total += smp.Value
		if len(smp.Frames) == 0 || smp.Frames[0].Type != profiles.FrameKernel || smp.Frames[0].Function == "" {
			continue
		}
		kernel += smp.Value
		last := smp.Frames[len(smp.Frames)-1]
		if last.Type == profiles.FrameKernel {
			t.Errorf("kernel stack without user frames below it: %+v", smp.Frames)
		}
	}
	t.Logf("dd: %d of %d samples with symbolized kernel frames", kernel, total)
	if total == 0 || float64(kernel)/float64(total) < 0.5 {
		t.Errorf("dd: %d of %d samples have symbolized kernel frames, want most", kernel, total)
	}
}

// Several tasks share one sampler: subscriptions to the same process each
// get every sample; the PID leaves the filter with the last one; processes
// not added are never sampled.
func TestSharedSampler(t *testing.T) {
	requireEBPF(t)
	bin := workload.BuildC(t, "hotcpu.c")
	a := workload.Start(t, bin)
	other := workload.Start(t, bin) // burns CPU, never added
	_ = other

	m, err := NewManager(Options{Frequency: 199})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sub1, err := m.Acquire(a.PID())
	if err != nil {
		t.Fatal(err)
	}
	sub2, err := m.Acquire(a.PID())
	if err != nil {
		t.Fatal(err)
	}
	if !m.Loaded() {
		t.Fatal("sampler not loaded while subscriptions are open")
	}
	sampler := loaded(t, m)
	time.Sleep(2 * time.Second)
	b1, err := sub1.Drain()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := sub2.Drain()
	if err != nil {
		t.Fatal(err)
	}
	// sub1's drain collected for both; sub2 gets the same samples plus the
	// few taken between the two drains.
	if b1.Total() == 0 || b2.Total() < b1.Total() || b2.Total() > b1.Total()+20 {
		t.Errorf("shared subscriptions: totals %d and %d, want equal (±20)", b1.Total(), b2.Total())
	}
	st, err := sampler.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Samples > b2.Total()+20 {
		t.Errorf("sampler counted %d samples but the target got %d: other processes were sampled", st.Samples, b2.Total())
	}

	if err := sub1.Close(); err != nil {
		t.Fatal(err)
	}
	if on, err := sampler.IsTarget(a.PID()); err != nil || !on {
		t.Fatalf("pid left the filter while a subscription is open: %v", err)
	}
	if _, err := sub1.Drain(); err != ErrClosed {
		t.Errorf("drain after close: %v, want ErrClosed", err)
	}
	time.Sleep(500 * time.Millisecond)
	if b, err := sub2.Drain(); err != nil || b.Total() == 0 {
		t.Errorf("remaining subscription: %v, %d samples", err, b.Total())
	}
	filter := sampler.k.objs.TargetPids
	if err := sub2.Close(); err != nil {
		t.Fatal(err)
	}
	if m.Loaded() {
		t.Error("sampler still loaded after the last subscription closed")
	}
	if _, err := filter.Info(); err == nil {
		t.Error("filter map still open after unload")
	}
}

// A process exiting mid-task: what was sampled is still drained and
// symbolized (symbols were preloaded).
func TestProcessExit(t *testing.T) {
	requireEBPF(t)
	bin := workload.BuildC(t, "hotcpu.c")
	s, err := Open(Options{Frequency: 499})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	proc := workload.Start(t, bin, "150") // about 0.75 s of work
	sub, err := s.Add(proc.PID())
	if err != nil {
		t.Fatal(err)
	}
	sym := symbolize.New(symbolize.Options{})
	if err := sym.Preload(proc.PID()); err != nil {
		t.Fatal(err)
	}
	if err := proc.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(proc.PID())); err == nil {
		t.Fatal("process still exists")
	}
	b, err := sub.Drain()
	if err != nil {
		t.Fatal(err)
	}
	p := b.Profile(sym, nil, nil)
	got := share(p, regexp.MustCompile(`^hot_[ab]$`))
	if b.Total() < 50 || got < 0.9 {
		t.Errorf("exited process: %d samples, %.2f in hot_a/hot_b; want most of ~300 samples symbolized", b.Total(), got)
	}
	_ = sub.Close()
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{{Frequency: -1}, {Frequency: 20000}, {StackEntries: -5}, {MaxPIDs: 1 << 21}} {
		if _, err := NewManager(o); err == nil {
			t.Errorf("NewManager(%+v) accepted", o)
		} else {
			t.Log(err)
		}
	}
	if _, err := parseCPUList("0-"); err == nil {
		t.Error("bad CPU list accepted")
	}
	if got, err := parseCPUList("0-2,5"); err != nil || len(got) != 4 || got[3] != 5 {
		t.Errorf("parseCPUList: %v %v", got, err)
	}
}

func TestAddBadPID(t *testing.T) {
	requireEBPF(t)
	s, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, pid := range []int{0, -3, 1 << 30} {
		if _, err := s.Add(pid); err == nil {
			t.Errorf("Add(%d) accepted", pid)
		}
	}
}

// Opening and closing leaves no goroutine and no file descriptor behind.
func TestNoLeaks(t *testing.T) {
	requireEBPF(t)
	proftest.NoLeaks(t, func() (*Manager, error) { return NewManager(Options{}) })
}

// The path a collector in a container takes: PIDs compared in our PID
// namespace through bpf_get_ns_current_pid_tgid.
func TestPIDNamespacePath(t *testing.T) {
	requireEBPF(t)
	proc := workload.Start(t, workload.BuildC(t, "hotcpu.c"))
	s, err := Open(Options{Frequency: 199, forcePIDNamespace: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ino uint64
	if err := s.k.objs.PidnsIno.Get(&ino); err != nil || ino == 0 {
		t.Fatalf("namespace path not enabled: ino %d, %v", ino, err)
	}
	sub, err := s.Add(proc.PID())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	b, err := sub.Drain()
	if err != nil {
		t.Fatal(err)
	}
	p := b.Profile(symbolize.New(symbolize.Options{}), nil, nil)
	// Samples follow the CPU time the workload got, which a busy machine
	// squeezes: ask for a modest number.
	if got := share(p, regexp.MustCompile(`^hot_[ab]$`)); b.Total() < 20 || got < 0.9 {
		t.Errorf("namespace path: %d samples, %.2f in hot_a/hot_b; want the workload's", b.Total(), got)
	}
}

// loaded is the sampler m has loaded now.
func loaded(t *testing.T, m *Manager) *Sampler {
	t.Helper()
	p, ok := m.Profiler()
	if !ok {
		t.Fatal("sampler not loaded")
	}
	return &Sampler{Profiler: p, k: p.Kernel().(*kernel)}
}
