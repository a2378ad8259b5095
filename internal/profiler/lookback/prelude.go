//go:build linux

package lookback

import (
	"math"
	"time"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/stackprof"
)

// Prelude is what the record holds for one task: the samples of
// [trigger − lookback, task start), symbolized and weighted in the task's
// units, to go into the task's first report.
type Prelude struct {
	Trigger time.Time
	// Start is the start of the oldest bucket taken (zero: nothing).
	Start   time.Time
	Samples []profiles.Sample
}

// Prelude takes the on-CPU record of process pid for a task that started at
// taskStart on a trigger at trigger, sampling at taskFrequency Hz. A
// lookback sample stands for 1/Frequency s of CPU, a task sample for
// 1/taskFrequency s, so counts are scaled by taskFrequency/Frequency: the
// two add up as CPU time. Samples before the trigger are marked
// before_trigger, those between the trigger and the task's start during.
// nil when the record holds nothing for the window.
func (r *Recorder) Prelude(pid int, trigger time.Time, lookback time.Duration, taskStart time.Time, taskFrequency int, sym stackprof.Symbolizer) *Prelude {
	return r.prelude(OnCPU, pid, trigger, lookback, taskStart, float64(taskFrequency)/float64(r.opts.Frequency), sym)
}

// PreludeOffCPU is Prelude for an off_cpu task from the off-CPU record.
// Both count nanoseconds off the CPU, so nothing is rescaled: each source
// already scales the blocks its stack budget skipped into the ones it
// recorded, and both have the same budget and min block.
func (r *Recorder) PreludeOffCPU(pid int, trigger time.Time, lookback time.Duration, taskStart time.Time, sym stackprof.Symbolizer) *Prelude {
	return r.prelude(OffCPU, pid, trigger, lookback, taskStart, 1, sym)
}

func (r *Recorder) prelude(kind Kind, pid int, trigger time.Time, lookback time.Duration, taskStart time.Time, scale float64, sym stackprof.Symbolizer) *Prelude {
	if lookback <= 0 || trigger.IsZero() {
		return nil
	}
	p := &Prelude{Trigger: trigger}
	for _, w := range []struct {
		from, to time.Time
		phase    string
	}{
		{trigger.Add(-lookback), trigger, profiles.PhaseBeforeTrigger},
		{trigger, taskStart, profiles.PhaseDuring},
	} {
		// Each stack once per phase: its buckets' counts, scaled and cut
		// by the window, summed.
		var order []string
		stacks := map[string]stackprof.RawSample[weight]{}
		weights := map[string]float64{}
		for _, part := range r.WindowOf(kind, pid, w.from, w.to) {
			if p.Start.IsZero() || part.Start.Before(p.Start) {
				p.Start = part.Start
			}
			for _, rs := range part.Samples {
				st := stackprof.Stack{User: rs.User, Kernel: rs.Kernel, UserLost: rs.UserLost, KernelLost: rs.KernelLost, Truncated: rs.Truncated}
				k := st.Key()
				if _, ok := stacks[k]; !ok {
					stacks[k] = rs
					order = append(order, k)
				}
				weights[k] += float64(rs.Value) * scale * part.Fraction
			}
		}
		b := stackprof.Batch[weight]{PID: pid}
		for _, k := range order {
			rs := stacks[k]
			if rs.Value = weight(math.Round(weights[k])); rs.Value > 0 {
				b.Samples = append(b.Samples, rs)
			}
		}
		for _, s := range b.Profile(sym, nil, nil).Samples {
			s.Labels = map[string]string{profiles.AttrPhase: w.phase}
			p.Samples = append(p.Samples, s)
		}
	}
	if len(p.Samples) == 0 {
		return nil
	}
	return p
}

// Apply puts the prelude into a task's first report: the report's own
// samples are marked during, the prelude's are added, the report starts
// where the prelude does, and the trigger time is on it.
func (p *Prelude) Apply(first *profiles.Profile) {
	for i := range first.Samples {
		s := &first.Samples[i]
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[profiles.AttrPhase] = profiles.PhaseDuring
	}
	first.Samples = append(first.Samples, p.Samples...)
	if !p.Start.IsZero() && p.Start.Before(first.Start) {
		first.Start = p.Start
	}
	if first.Attributes == nil {
		first.Attributes = map[string]any{}
	}
	if _, ok := first.Attributes[profiles.AttrTriggerTime]; !ok {
		first.Attributes[profiles.AttrTriggerTime] = p.Trigger.UTC().Format(time.RFC3339Nano)
	}
}
