//go:build linux

package lookback

import (
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/offcpu"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/profiler/taskrun"
	"github.com/contprof/contprof/internal/testhelper/proftest"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

// phaseSeconds sums the off-CPU seconds of the samples whose stack has a
// frame matching re, per phase.
func phaseSeconds(p *profiles.Profile, re *regexp.Regexp) map[string]float64 {
	out := map[string]float64{}
	for _, s := range p.Samples {
		for _, f := range s.Frames {
			if re.MatchString(f.Function) {
				out[s.Labels[profiles.AttrPhase]] += float64(s.Value) / 1e9
				break
			}
		}
	}
	return out
}

// Off-CPU lookback (opt-in): a process an off_cpu policy with a lookback
// selects is recorded by the off-CPU source; an off_cpu task started after
// the trigger gets the blocking before it (block_before, before_trigger)
// in its first report, in nanoseconds like its own samples (block_after,
// during). An unselected process is not recorded, the on-CPU sampler is
// not loaded for an off-CPU selection, and removing the selection stops
// the recording and unloads the source.
func TestOffCPULookback(t *testing.T) {
	requireEBPF(t)
	bin := workload.BuildC(t, "blockswitch.c")
	sel, other := workload.Start(t, bin), workload.Start(t, bin)
	pid := sel.PID()
	fds := proftest.OpenFDs(t)
	r := newRecorder(t, Options{})
	const lookback = 10 * time.Second

	if err := r.Sync(Selection{pid: {OffCPU: lookback}}); err != nil {
		t.Fatal(err)
	}
	if !r.IsRecordedOffCPU(pid) || r.IsRecordedOffCPU(other.PID()) || r.IsSampled(pid) {
		t.Fatalf("filters: selected off-CPU %v, other off-CPU %v, selected on-CPU %v; want true, false, false",
			r.IsRecordedOffCPU(pid), r.IsRecordedOffCPU(other.PID()), r.IsSampled(pid))
	}
	if st := r.Stats(); !st.OffCPULoaded || st.Loaded || st.Processes != 1 {
		t.Fatalf("stats %+v; want only the off-CPU source loaded, one process", st)
	}
	recordStart := time.Now()
	time.Sleep(4 * time.Second)

	// The trigger: the process now blocks in block_after.
	if err := sel.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	trigger := time.Now()
	time.Sleep(500 * time.Millisecond) // a dispatch delay, recorded as during

	mgr, err := offcpu.NewManager(offcpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	sym := symbolize.New(symbolize.Options{})
	run, err := mgr.StartTask(sym, taskrun.Task{PID: pid, Duration: 2 * time.Second, ReportInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	reports := runWithPrelude(t, run, r.PreludeOffCPU(pid, trigger, lookback, run.Started(), sym))
	if len(reports) == 0 {
		t.Fatal("no report")
	}
	p := reports[0]
	before := phaseSeconds(p, regexp.MustCompile(`^block_before$`))
	after := phaseSeconds(p, regexp.MustCompile(`^block_after$`))
	// The process is off the CPU nearly all the time: its blocking before
	// the trigger is about the wall time the record covered before it.
	from := recordStart
	if p.Start.After(from) {
		from = p.Start
	}
	covered := trigger.Sub(from).Seconds()
	t.Logf("record %.2fs before the trigger; block_before %v s, block_after %v s; report starts %v before the trigger",
		covered, before, after, trigger.Sub(p.Start))
	if got := before[profiles.PhaseBeforeTrigger]; got < 0.8*covered || got > 1.1*covered+0.3 {
		t.Errorf("block_before %.2fs off-CPU before the trigger; want about %.2fs", got, covered)
	}
	if before[profiles.PhaseDuring] > 0.3 {
		t.Errorf("block_before %.2fs during the task; the process left it at the trigger", before[profiles.PhaseDuring])
	}
	if after[profiles.PhaseBeforeTrigger] > 0.3 || after[profiles.PhaseDuring] < 1 {
		t.Errorf("block_after %v; want it during only (the 2 s task and the gap before it)", after)
	}
	if p.Attributes[profiles.AttrTriggerTime] == nil || !p.Start.Before(trigger.Add(-3*time.Second)) {
		t.Errorf("report starts %v before the trigger, trigger time %v", trigger.Sub(p.Start), p.Attributes[profiles.AttrTriggerTime])
	}
	for _, c := range r.Coverage() {
		if c.PID != pid || c.Target != offcpu.Target || c.Lookback != lookback {
			t.Errorf("coverage %+v; want only process %d off_cpu %v", c, pid, lookback)
		}
	}

	// Selection removed: the recording stops and the source is unloaded.
	if err := r.Sync(Selection{}); err != nil {
		t.Fatal(err)
	}
	if r.IsRecordedOffCPU(pid) {
		t.Error("process still in the off-CPU filter after its selection was removed")
	}
	if st := r.Stats(); st.OffCPULoaded || st.Processes != 0 || st.Bytes != 0 {
		t.Errorf("after removal: %+v; want nothing loaded or kept", st)
	}
	if parts := r.WindowOf(OffCPU, pid, time.Now().Add(-time.Minute), time.Now()); len(parts) != 0 {
		t.Errorf("%d buckets kept after removal", len(parts))
	}
	mgr.Close()
	if got := proftest.OpenFDs(t); got > fds {
		t.Errorf("%d file descriptors open after unload, %d before", got, fds)
	}
}
