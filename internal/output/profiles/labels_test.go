package profiles

import (
	"testing"
)

// The phase of a lookback sample reaches both export forms.
func TestSampleLabels(t *testing.T) {
	p := testProfile(OnCPU(99))
	p.Samples[0].Labels = map[string]string{AttrPhase: PhaseBeforeTrigger}
	p.Samples[1].Labels = map[string]string{AttrPhase: PhaseDuring}

	pp := p.Pprof()
	if err := pp.CheckValid(); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, s := range pp.Sample {
		if l := s.Label[AttrPhase]; len(l) == 1 {
			got[l[0]] += s.Value[0]
		}
	}
	if got[PhaseBeforeTrigger] != 75 || got[PhaseDuring] != 20 {
		t.Errorf("pprof labels: %v", got)
	}

	pd := ToPprofile("test", p)
	d := pd.Dictionary()
	prof := pd.ResourceProfiles().At(0).ScopeProfiles().At(0).Profiles().At(0)
	phases := map[string]int64{}
	for i := 0; i < prof.Samples().Len(); i++ {
		s := prof.Samples().At(i)
		for _, ai := range s.AttributeIndices().AsRaw() {
			kv := d.AttributeTable().At(int(ai))
			if d.StringTable().At(int(kv.KeyStrindex())) == AttrPhase {
				phases[kv.Value().Str()] += s.Values().At(0)
			}
		}
	}
	if phases[PhaseBeforeTrigger] != 75 || phases[PhaseDuring] != 20 || len(phases) != 2 {
		t.Errorf("OTLP sample attributes: %v", phases)
	}
	if err := Conformance(pd); err != nil {
		t.Errorf("conformance: %v", err)
	}
}
