//go:build linux

package ebpfprocessreceiver

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/monitor/procfs"
	"github.com/contprof/contprof/internal/testhelper/proftest"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

func lookbackSet(t *testing.T, exe string, lookback string) *policy.Set {
	t.Helper()
	doc := "policies:\n- {name: p, target: on_cpu, selector: {process.executable.name: " + exe + "}, " +
		"lookback: " + lookback + ", items: [{monitor: process_cpu, threshold: 60, period: 5, count: 3}]}\n" +
		"- {name: q, target: off_cpu, items: [{monitor: process_cpu, threshold: 60, period: 5, count: 3}]}\n"
	ps, err := policy.Parse([]byte(doc), "test")
	if err != nil {
		t.Fatal(err)
	}
	return policy.NewSet(ps, time.Now())
}

// The record follows the policies at every scrape: only the processes a
// policy with a lookback selects are sampled, and a policy change that
// drops the selection (lookback off, another selector) stops the sampling
// at the next scrape.
func TestLookbackFollowsPolicies(t *testing.T) {
	proftest.RequireEBPF(t, "the lookback sampler")
	bin := workload.BuildC(t, "hotcpu.c")
	a, b := workload.Start(t, bin), workload.Start(t, bin)
	snap := &procfs.Snapshot{Samples: []procfs.Sample{
		{Info: &procfs.Info{ID: procfs.ID{PID: int32(a.PID())}, ExeName: "app"}},
		{Info: &procfs.Info{ID: procfs.ID{PID: int32(b.PID())}, ExeName: "other"}},
	}}
	l, err := newLookbackSync(LookbackConfig{Frequency: 19, MaxMemory: 16 << 20}, OffCPUConfig{}, true, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	ctx := context.Background()
	// A change applies within one collection interval (1 s), but for the
	// first load of the sampler, which may take seconds on a busy machine.
	check := func(step string, wantA, wantB bool) {
		t.Helper()
		limit := time.Second
		if !l.rec.Stats().Loaded {
			limit = 30 * time.Second
		}
		start := time.Now()
		for l.rec.IsSampled(a.PID()) != wantA || l.rec.IsSampled(b.PID()) != wantB {
			if time.Since(start) > limit {
				t.Fatalf("%s: after %v selected process sampled %v, other %v; want %v, %v",
					step, limit, l.rec.IsSampled(a.PID()), l.rec.IsSampled(b.PID()), wantA, wantB)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("%s: applied after %v", step, time.Since(start))
	}

	l.sync(ctx, snap, lookbackSet(t, "app", "10s"), nil)
	check("lookback 10s on app", true, false)
	l.sync(ctx, snap, lookbackSet(t, "app", "0s"), nil)
	check("lookback turned off", false, false)
	l.sync(ctx, snap, lookbackSet(t, "other", "5s"), nil)
	check("selector changed to other", false, true)
	if cs := l.rec.Coverage(); len(cs) != 1 || cs[0].PID != b.PID() || cs[0].Lookback != 5*time.Second {
		t.Errorf("coverage %+v", cs)
	}
	l.sync(ctx, snap, nil, nil)
	check("no policies", false, false)
	for start := time.Now(); l.rec.Stats().Loaded; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > time.Second {
			t.Fatal("sampler still loaded with nothing selected")
		}
	}
}

// off_cpu lookback is opt-in: only an off_cpu policy with a lookback puts
// its processes into the off-CPU record (the on_cpu policy of lookbackSet
// with lookback 0s records nothing), and only when the receiver may
// profile off-CPU.
func TestLookbackOffCPUSelection(t *testing.T) {
	doc := "policies:\n" +
		"- {name: p, target: on_cpu, selector: {process.executable.name: app}, lookback: 0s, items: [{monitor: process_cpu, threshold: 60, period: 5, count: 3}]}\n" +
		"- {name: q, target: off_cpu, selector: {process.executable.name: app}, lookback: 20s, items: [{monitor: process_cpu, threshold: 60, period: 5, count: 3}]}\n" +
		"- {name: r, target: off_cpu, selector: {process.executable.name: app}, items: [{monitor: process_cpu, threshold: 60, period: 5, count: 3}]}\n" +
		"- {name: s, target: network, items: [{monitor: process_cpu, threshold: 60, period: 5, count: 3}]}\n"
	ps, err := policy.Parse([]byte(doc), "test")
	if err != nil {
		t.Fatal(err)
	}
	set := policy.NewSet(ps, time.Now())
	app := &procfs.Info{ExeName: "app"}
	if got := selectedLookback(set, app); got != (lookbacks{off: 20 * time.Second}) {
		t.Errorf("app: %+v; want off_cpu 20s only", got)
	}
	other := &procfs.Info{ExeName: "other"}
	if got := selectedLookback(set, other); got != (lookbacks{}) {
		t.Errorf("other: %+v; want nothing", got)
	}
}
