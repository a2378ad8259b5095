package taskcontrol

import (
	"testing"

	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/output/profiles"
)

// A stack sampled before the trigger (lookback) and during the task stays
// two samples with their phases in the stored profile.
func TestProfileStoreKeepsLabels(t *testing.T) {
	c, _ := newController(t, Config{})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	id := mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(1)))
	p := cpuProfile(t, 3, "work")
	before := p.Samples[0]
	before.Value = 2
	before.Labels = map[string]string{profiles.AttrPhase: profiles.PhaseBeforeTrigger}
	p.Samples[0].Labels = map[string]string{profiles.AttrPhase: profiles.PhaseDuring}
	p.Samples = append(p.Samples, before)
	ex.sink(id).AddProfile(p)
	ex.sink(id).AddProfile(cpuProfile(t, 4, "work")) // no phase
	got, _ := download(t, c, id)
	phases := map[string]int64{}
	for _, s := range got.Sample {
		phase := "none"
		if l := s.Label[profiles.AttrPhase]; len(l) == 1 {
			phase = l[0]
		}
		phases[phase] += s.Value[0]
	}
	if phases[profiles.PhaseDuring] != 3 || phases[profiles.PhaseBeforeTrigger] != 2 || phases["none"] != 4 {
		t.Errorf("stored phases %v; want during 3, before_trigger 2, none 4", phases)
	}
}
