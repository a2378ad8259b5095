//go:build linux

package lookback

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/oncpu"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/profiler/taskrun"
	"github.com/contprof/contprof/internal/testhelper/proftest"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

func requireEBPF(t testing.TB) {
	t.Helper()
	proftest.RequireEBPF(t, "the lookback sampler")
}

func newRecorder(t *testing.T, opts Options) *Recorder {
	t.Helper()
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return r
}

func selected(t testing.TB, lookback time.Duration, pids ...int) Selection {
	t.Helper()
	sel := Selection{}
	for _, pid := range pids {
		sel[pid] = Selected{Lookback: lookback}
	}
	return sel
}

func coverageOf(r *Recorder, pid int) (Coverage, bool) {
	for _, c := range r.Coverage() {
		if c.PID == pid {
			return c, true
		}
	}
	return Coverage{}, false
}

// Only selected processes are sampled, and a selection removed stops the
// sampling at once (the next scrape's Sync): the process leaves the
// in-kernel filter, its ring goes, and with nothing selected the sampler
// is unloaded.
func TestOnlySelectedAndRemoval(t *testing.T) {
	requireEBPF(t)
	bin := workload.BuildC(t, "hotcpu.c")
	a, b := workload.Start(t, bin), workload.Start(t, bin)
	fds := proftest.OpenFDs(t)
	r := newRecorder(t, Options{})

	if err := r.Sync(selected(t, 10*time.Second, a.PID())); err != nil {
		t.Fatal(err)
	}
	cpu0 := cpuSeconds(t, a.PID())
	time.Sleep(3 * time.Second)
	// CPU time, not wall clock: the machine may give the workload little.
	want := (cpuSeconds(t, a.PID()) - cpu0) * float64(r.Frequency())
	ca, okA := coverageOf(r, a.PID())
	if !okA || ca.Samples < 1 || float64(ca.Samples) < want/2 || ca.Bytes <= 0 || ca.From.IsZero() {
		t.Errorf("selected process: %+v (recorded %v); want about %.0f samples", ca, okA, want)
	}
	if _, okB := coverageOf(r, b.PID()); okB || r.IsSampled(b.PID()) {
		t.Errorf("process %d is recorded or in the filter though no policy selects it", b.PID())
	}
	if !r.IsSampled(a.PID()) {
		t.Errorf("selected process %d is not in the filter", a.PID())
	}
	st := r.Stats()
	if !st.Loaded || st.Processes != 1 || st.Bytes != ca.Bytes {
		t.Errorf("stats %+v, coverage %+v", st, ca)
	}

	// Selection removed (by a policy change): sampling stops now.
	if err := r.Sync(Selection{}); err != nil {
		t.Fatal(err)
	}
	if r.IsSampled(a.PID()) {
		t.Error("process still in the filter after its selection was removed")
	}
	if st := r.Stats(); st.Loaded || st.Processes != 0 || st.Bytes != 0 {
		t.Errorf("after removal: %+v; want nothing loaded or kept", st)
	}
	time.Sleep(time.Second)
	if parts := r.Window(a.PID(), time.Now().Add(-time.Minute), time.Now()); len(parts) != 0 {
		t.Errorf("%d buckets recorded after removal", len(parts))
	}
	if got := proftest.OpenFDs(t); got > fds {
		t.Errorf("%d file descriptors open after unload, %d before", got, fds)
	}
}

// The memory bound evicts the oldest bucket of the largest ring first and
// counts what it drops.
func TestEvictLargestFirst(t *testing.T) {
	mk := func(sizes ...int64) *ring {
		rg := &ring{}
		for _, s := range sizes {
			rg.buckets = append(rg.buckets, bucket{bytes: s, n: uint64(s / 100)})
			rg.bytes += s
		}
		return rg
	}
	r := &Recorder{opts: Options{MaxMemory: 1000}, procs: map[key]*ring{
		{pid: 1}: mk(300, 300, 300), // 900: the largest
		{pid: 2}: mk(200, 200),      // 400
		{pid: 3}: mk(100),
	}}
	for _, rg := range r.procs {
		r.bytes += rg.bytes
	}
	r.evictLocked() // 1400 -> drop 1's oldest (1100) -> 1: 600 vs 2: 400 -> drop 1's (800)
	if r.bytes != 800 || len(r.procs[key{pid: 1}].buckets) != 1 || len(r.procs[key{pid: 2}].buckets) != 2 || len(r.procs[key{pid: 3}].buckets) != 1 {
		t.Errorf("after eviction: %d bytes, rings %d/%d/%d buckets", r.bytes, len(r.procs[key{pid: 1}].buckets), len(r.procs[key{pid: 2}].buckets), len(r.procs[key{pid: 3}].buckets))
	}
	if r.dropped != 6 {
		t.Errorf("dropped %d samples, want 6", r.dropped)
	}
}

func TestOptionsErrors(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Frequency: -1}, "profiling.lookback.frequency: -1 Hz is out of range [1, 1000]"},
		{Options{MaxMemory: 1000}, "profiling.lookback.max_memory: 1000 bytes is out of range [64 KiB, 4 GiB]"},
	} {
		if err := c.o.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
	o := Options{}
	if err := o.Validate(); err != nil || o.Frequency != 19 || o.MaxMemory != 16<<20 {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}

// cpuSeconds is the CPU time process pid has used (user + system).
func cpuSeconds(t testing.TB, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// cpuAt is a reading of a process's CPU time.
type cpuAt struct {
	at  time.Time
	cpu float64
}

// cpuBefore is the last reading at or before at.
func cpuBefore(rs []cpuAt, at time.Time) float64 {
	v := rs[0].cpu
	for _, r := range rs {
		if r.at.After(at) {
			break
		}
		v = r.cpu
	}
	return v
}

// phaseCPU sums the CPU seconds of the samples of p whose stack holds a
// function matching re, by phase (values are task samples: 1/freq s each).
func phaseCPU(p *profiles.Profile, re *regexp.Regexp, freq int) map[string]float64 {
	out := map[string]float64{}
	for _, s := range p.Samples {
		for _, f := range s.Frames {
			if re.MatchString(f.Function) {
				out[s.Labels[profiles.AttrPhase]] += float64(s.Value) / float64(freq)
				break
			}
		}
	}
	return out
}

// The scenario: a process idles at ~20 % CPU in idle_work, then
// spikes to 100 % in spike_work; a policy (>= 60 % in 3 of 5 s, duration
// 5 s, lookback 10 s) fires about 3 s into the spike. The task's first
// (here only) report holds idle_work from before the spike and spike_work
// for the ~3 s before the trigger plus the 5 s the task ran. Figures are
// CPU time (/proc), not wall clock: the machine may be loaded.
func TestSpikeLookback(t *testing.T) {
	requireEBPF(t)
	const (
		lookback = 10 * time.Second
		duration = 5 * time.Second
		taskFreq = oncpu.DefaultFrequency
	)
	// Its own session, so its own scheduler autogroup, at the highest
	// priority: on a busy machine the spike still gets the CPU it asks
	// for and reaches the threshold.
	cmd := exec.Command(workload.BuildC(t, "spike.c"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	proc := workload.StartCmd(t, cmd)
	pid := proc.PID()
	if err := unix.Setpriority(unix.PRIO_PROCESS, pid, -20); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/autogroup", []byte("-20"), 0); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	r := newRecorder(t, Options{})
	if err := r.Sync(selected(t, lookback, pid)); err != nil {
		t.Fatal(err)
	}
	var readings []cpuAt
	read := func() cpuAt {
		c := cpuAt{time.Now(), cpuSeconds(t, pid)}
		readings = append(readings, c)
		return c
	}
	read()
	// Idle long enough to fill the lookback before the spike.
	for i := 0; i < 9; i++ {
		time.Sleep(time.Second)
		read()
	}
	if err := proc.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	spike := read()

	// The policy: >= 60 % in 3 of the last 5 seconds, judged at the end of
	// every second.
	var trigger time.Time
	var over []bool
	for trigger.IsZero() {
		if time.Since(spike.at) > 30*time.Second {
			t.Fatal("the spike never reached 60 % in 3 of 5 s")
		}
		prev := readings[len(readings)-1]
		time.Sleep(time.Second - time.Since(prev.at))
		now := read()
		pct := 100 * (now.cpu - prev.cpu) / now.at.Sub(prev.at).Seconds()
		over = append(over, pct >= 60)
		n := 0
		for _, o := range over[max(0, len(over)-5):] {
			if o {
				n++
			}
		}
		if n >= 3 {
			trigger = now.at
		}
	}

	mgr, err := oncpu.NewManager(oncpu.Options{Frequency: taskFreq})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	sym := symbolize.New(symbolize.Options{})
	run, err := mgr.StartTask(sym, taskrun.Task{PID: pid, Duration: duration, ReportInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	reports := runWithPrelude(t, run, r.Prelude(pid, trigger, lookback, run.Started(), taskFreq, sym))
	taskEnd := read()
	if len(reports) != 1 {
		t.Fatalf("%d reports, want 1", len(reports))
	}
	p := reports[0]

	idleRE, spikeRE := regexp.MustCompile(`^idle_work$`), regexp.MustCompile(`^spike_work$`)
	idle, spk := phaseCPU(p, idleRE, taskFreq), phaseCPU(p, spikeRE, taskFreq)
	// What /proc says the process used: idle from the start of the
	// lookback to the spike, spike from the spike to the task's end.
	wantIdle := spike.cpu - cpuBefore(readings, trigger.Add(-lookback))
	wantSpike := taskEnd.cpu - spike.cpu
	wantBefore := cpuBefore(readings, trigger) - spike.cpu
	gotSpike := spk[profiles.PhaseBeforeTrigger] + spk[profiles.PhaseDuring]
	t.Logf("trigger %.1fs into the spike; idle_work %.2fs CPU in the profile (/proc: %.2fs); spike_work %.2fs (before trigger %.2fs, during %.2fs; /proc: %.2fs, of which %.2fs before the trigger)",
		trigger.Sub(spike.at).Seconds(), idle[profiles.PhaseBeforeTrigger], wantIdle, gotSpike,
		spk[profiles.PhaseBeforeTrigger], spk[profiles.PhaseDuring], wantSpike, wantBefore)

	if idle[profiles.PhaseBeforeTrigger] <= 0 || idle[profiles.PhaseDuring] > 0 {
		t.Errorf("idle_work: %v; want it before the trigger only", idle)
	}
	// idle_work is sampled at 19 Hz only: ~27 samples, so a wider margin.
	if got := idle[profiles.PhaseBeforeTrigger]; got < 0.6*wantIdle || got > 1.4*wantIdle {
		t.Errorf("idle_work %.2fs CPU, /proc %.2fs", got, wantIdle)
	}
	if gotSpike < 0.85*wantSpike || gotSpike > 1.15*wantSpike {
		t.Errorf("spike_work %.2fs CPU in the profile, /proc %.2fs: off by more than 15 %%", gotSpike, wantSpike)
	}
	if spk[profiles.PhaseBeforeTrigger] < 0.85*wantBefore || spk[profiles.PhaseBeforeTrigger] > 1.15*wantBefore+0.2 {
		t.Errorf("spike_work before the trigger %.2fs, /proc %.2fs", spk[profiles.PhaseBeforeTrigger], wantBefore)
	}
	if p.Start.After(trigger.Add(-lookback + time.Second)) {
		t.Errorf("report starts at %v, %v before the trigger; want ~%v", p.Start, trigger.Sub(p.Start), lookback)
	}
	if p.Attributes[profiles.AttrTriggerTime] == nil {
		t.Error("no trigger time on the profile")
	}
}

// runWithPrelude runs a task to its end with pre put into its first
// report, and returns the reports.
func runWithPrelude(t *testing.T, run *taskrun.Run, pre *Prelude) []*profiles.Profile {
	t.Helper()
	if pre == nil {
		t.Fatal("no lookback samples")
	}
	var reports []*profiles.Profile
	if err := run.Run(t.Context(), func(p *profiles.Profile) {
		if len(reports) == 0 {
			pre.Apply(p)
		}
		reports = append(reports, p)
	}); err != nil {
		t.Fatal(err)
	}
	return reports
}
