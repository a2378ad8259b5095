package history

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/contprof/contprof/internal/control/policy"
)

// Firing is what a policy would have done to one process over the looked
// back span.
type Firing struct {
	Process string         `json:"process"`
	Attrs   map[string]any `json:"attributes"`
	// Triggers is how many tasks would have started, the policy's silence
	// honoured.
	Triggers int `json:"triggers"`
	// Seconds is how many seconds met the policy (with or without silence).
	Seconds int       `json:"seconds"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
	// Causes are the items met at the first trigger, with their crossing
	// values, as a task's causes would show them.
	Causes []DryCause `json:"causes"`
}

// DryCause is one item met at a trigger.
type DryCause struct {
	ItemIndex int            `json:"item_index"`
	Monitor   policy.Monitor `json:"monitor"`
	Threshold float64        `json:"threshold"`
	Period    int            `json:"period"`
	Count     int            `json:"count"`
	Values    []float64      `json:"values"`
}

// PolicyRun is the dry-run result of one policy.
type PolicyRun struct {
	Policy string `json:"policy"`
	// Fired lists the processes the policy would have triggered on, most
	// triggers first.
	Fired []Firing `json:"fired"`
	// Evaluated is how many processes with history the selector matched.
	Evaluated int `json:"evaluated"`
	// Notes say what the dry-run could not evaluate.
	Notes []string `json:"notes,omitempty"`
}

// DryRun evaluates policies (validated, as policy.Parse returns them) over
// the kept seconds in (now-lookback, now] of every process with history:
// the same rule as the live windows (an item is met when at least count of
// the last period seconds reached the threshold; items are OR-ed). It starts
// nothing and changes nothing.
func (s *Store) DryRun(policies []policy.Policy, now time.Time, lookback time.Duration) []PolicyRun {
	end := now.Unix()
	span := min(int64(lookback/time.Second), s.n)
	if span < 1 {
		span = 1
	}
	start := end - span + 1
	keys := s.Keys()
	out := make([]PolicyRun, 0, len(policies))
	scratch := map[policy.Monitor][]float64{}
	for i := range policies {
		pol := &policies[i]
		run := PolicyRun{Policy: pol.Name, Fired: []Firing{}}
		var items []int
		for j := range pol.Items {
			if pol.Items[j].HasURIFilter() {
				run.Notes = append(run.Notes, fmt.Sprintf("items[%d]: the history keeps a process's HTTP traffic as a whole, not per path, so this item's uri filter cannot be replayed; it is left out", j))
				continue
			}
			items = append(items, j)
		}
		silence := int64(pol.Silence / time.Second)
		if pol.Silence <= 0 {
			silence = int64(policy.DefaultSilence / time.Second)
		}
		for _, k := range keys {
			p := s.procs[k]
			if !pol.Selector.Matches(policy.AttrMap(p.Attrs)) {
				continue
			}
			run.Evaluated++
			f := s.replay(p, pol, items, start, end, silence, scratch)
			if f.Seconds > 0 {
				run.Fired = append(run.Fired, f)
			}
		}
		sort.SliceStable(run.Fired, func(a, b int) bool { return run.Fired[a].Triggers > run.Fired[b].Triggers })
		out = append(out, run)
	}
	return out
}

// replay decodes each monitor the items read once (a series lookup is a
// search among its change points), then slides the items' periods over
// the decoded seconds. scratch holds the decoded values between calls.
func (s *Store) replay(p *Proc, pol *policy.Policy, items []int, start, end, silence int64, scratch map[policy.Monitor][]float64) Firing {
	f := Firing{Process: p.Key, Attrs: p.Attrs}
	lo := start
	for _, j := range items {
		lo = min(lo, max(start-int64(pol.Items[j].Period)+1, 1))
	}
	decoded := map[policy.Monitor]bool{}
	for _, j := range items {
		m := pol.Items[j].Monitor
		if decoded[m] {
			continue
		}
		decoded[m] = true
		vals := slices.Grow(scratch[m][:0], int(end-lo+1))
		for x := lo; x <= end; x++ {
			v, ok := s.value(p, m, x)
			if !ok {
				v = math.NaN() // never reaches a threshold
			}
			vals = append(vals, v)
		}
		scratch[m] = vals
	}
	next := int64(0) // first second a new trigger may start
	for sec := start; sec <= end; sec++ {
		var met []DryCause
		for _, j := range items {
			it := &pol.Items[j]
			series := scratch[it.Monitor]
			var vals []float64
			for x := max(sec-int64(it.Period)+1, 1); x <= sec; x++ {
				if v := series[x-lo]; v >= it.Threshold {
					vals = append(vals, v)
				}
			}
			if len(vals) >= it.Count {
				met = append(met, DryCause{ItemIndex: j, Monitor: it.Monitor, Threshold: it.Threshold, Period: it.Period, Count: it.Count, Values: vals})
			}
		}
		if len(met) == 0 {
			continue
		}
		f.Seconds++
		if sec < next {
			continue
		}
		at := time.Unix(sec+1, 0)
		if f.Triggers == 0 {
			f.First, f.Causes = at, met
		}
		f.Last = at
		f.Triggers++
		next = sec + silence
	}
	return f
}
