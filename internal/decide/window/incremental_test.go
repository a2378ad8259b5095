package window

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/control/policy"
)

// TestRunningCountMatchesFullScan drives random traffic (gaps, jumps, late
// and too-old points, policy changes that resize windows) and checks after
// every judgement that the running count equals a full scan of the period.
func TestRunningCountMatchesFullScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randPolicies := func() []policy.Policy {
		var items []policy.Item
		for i := 0; i < 4; i++ {
			p := 1 + rng.IntN(20)
			items = append(items, policy.Item{Monitor: policy.MonitorProcessCPU, Threshold: 50, Period: p, Count: 1 + rng.IntN(p)})
		}
		items = append(items,
			policy.Item{Monitor: policy.MonitorSystemLoad, Threshold: 50, Period: 1 + rng.IntN(15), Count: 1},
			policy.Item{Monitor: policy.MonitorHTTPErrorRate, Threshold: 50, Period: 1 + rng.IntN(15), Count: 1},
		)
		// thresholds no random value misses half the time; Count high enough
		// that triggers are rare but happen
		return []policy.Policy{{Name: "r", Target: policy.TargetOnCPU, Items: items}}
	}
	e := New(Options{IdleTimeout: time.Hour, RefusedBackoff: time.Nanosecond})
	e.SetPolicies(randPolicies())
	now := time.Unix(base, 0)
	keys := []Key{{"h", 1, 1}, {"h", 2, 1}}
	newest := base
	checked, step := 0, 0
	verifyCount = func(r *rule, s int64, n int) {
		if full := r.count(s, nil); full != n {
			t.Fatalf("step %d: period %d at %d: running count %d, full scan %d", step, r.it.it.Period, s-base, n, full)
		}
		checked++
	}
	defer func() { verifyCount = nil }()
	for ; step < 20000; step++ {
		switch r := rng.IntN(100); {
		case r < 2:
			e.SetPolicies(randPolicies())
		case r < 5:
			newest += int64(2 + rng.IntN(12)) // jump
		case r < 70:
			newest++
		}
		sec := newest
		if rng.IntN(4) == 0 {
			sec -= int64(rng.IntN(30)) // late, sometimes older than the window
		}
		v := float64(rng.IntN(100))
		k := keys[rng.IntN(len(keys))]
		p := e.Get(k, now)
		if p == nil {
			p = e.Put(k, nil, now)
		}
		switch rng.IntN(3) {
		case 0:
			e.SetCPU(p, sec, v)
		case 1:
			e.SetHostLoad("h", sec, v, now)
		default:
			e.AddHTTP(p, sec, "/", v >= 50, 1, 0, false)
		}
		now = now.Add(time.Millisecond)
		var trs []Trigger
		switch rng.IntN(10) {
		case 0:
			trs = e.Advance(now, true)
		case 1, 2, 3, 4:
			trs = e.Advance(now, false)
		default:
			trs = e.EndBatch(now) // re-judges seconds of split sources
		}
		for _, tr := range trs {
			e.Resolve(&tr, now, false, time.Time{})
		}
	}
	if checked < 10000 {
		t.Fatalf("only %d running counts checked", checked)
	}
}
