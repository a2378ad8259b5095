package taskcontrol

import (
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/contprof/contprof/internal/control/policy"
)

func TestProfilesMergedPerTask(t *testing.T) {
	c, _ := newController(t, Config{})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	id := mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(1)))
	if _, ok := c.Profile(id); ok {
		t.Fatal("profile before any was handed over")
	}
	s := ex.sink(id)
	s.AddProfile(cpuProfile(t, 3, "work"))
	s.AddProfile(cpuProfile(t, 4, "work"))
	s.AddProfile(cpuProfile(t, 5, "other"))
	s.AddProfile(nil)
	data, ok := c.Profile(id)
	if !ok {
		t.Fatal("no profile")
	}
	p, err := profile.ParseData(data)
	if err != nil {
		t.Fatal(err)
	}
	perLeaf := map[string]int64{}
	for _, smp := range p.Sample {
		perLeaf[smp.Location[0].Line[0].Function.Name] += smp.Value[0]
	}
	if perLeaf["work"] != 7 || perLeaf["other"] != 5 {
		t.Fatalf("merged samples %v", perLeaf)
	}
	if data[0] != 0x1f || data[1] != 0x8b {
		t.Fatal("stored profile is not gzip")
	}
	ti := state(t, c, id)
	if ti.Profile.Profiles != 3 || ti.Profile.Bytes != len(data) || ti.Profile.Dropped {
		t.Fatalf("profile info %+v", ti.Profile)
	}

	// An incompatible profile is refused; the merged one stays.
	bad := cpuProfile(t, 1, "x")
	bad.SampleType = bad.SampleType[:1]
	for _, smp := range bad.Sample {
		smp.Value = smp.Value[:1]
	}
	s.AddProfile(bad)
	if ti := state(t, c, id); !strings.Contains(ti.Profile.Error, "merge") || ti.Profile.Profiles != 3 {
		t.Fatalf("profile info %+v", ti.Profile)
	}
	invalid := cpuProfile(t, 1, "x")
	invalid.Sample[0].Value = []int64{1}
	s.AddProfile(invalid)
	if ti := state(t, c, id); !strings.Contains(ti.Profile.Error, "invalid profile") {
		t.Fatalf("profile info %+v", ti.Profile)
	}
	if again, _ := c.Profile(id); len(again) != len(data) {
		t.Fatal("a refused profile changed the stored one")
	}
}

func TestProfileStoreBound(t *testing.T) {
	one := cpuProfile(t, 1, "f")
	size := encodedSize(t, one)
	// Room for two profiles, not three.
	c, clk := newController(t, Config{ProfileStoreBytes: int64(2*size + size/2)})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	var ids []string
	for i := range 3 {
		clk.Add(time.Second)
		id := mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(i+1)))
		ex.sink(id).AddProfile(cpuProfile(t, 1, "f"))
		ids = append(ids, id)
	}
	if _, ok := c.Profile(ids[0]); ok {
		t.Fatal("oldest task's profile was not dropped")
	}
	if ti := state(t, c, ids[0]); !ti.Profile.Dropped {
		t.Fatal("drop not recorded")
	}
	for _, id := range ids[1:] {
		if _, ok := c.Profile(id); !ok {
			t.Fatalf("newer profile %s dropped", id)
		}
	}
	if u := c.profiles.usage(); u > int64(2*size+size/2) {
		t.Fatalf("usage %d over the bound", u)
	}
	// A dropped task's later profiles are not stored again.
	ex.sink(ids[0]).AddProfile(cpuProfile(t, 1, "f"))
	if _, ok := c.Profile(ids[0]); ok {
		t.Fatal("evicted task stored again")
	}

	// A profile larger than the whole bound is not kept.
	tiny, _ := newController(t, Config{ProfileStoreBytes: 10})
	ex2 := newExecutor()
	defer tiny.RegisterExecutor(ex2)()
	id := mustAccept(t, tiny, req(policy.TargetOnCPU, 0, proc(1)))
	ex2.sink(id).AddProfile(cpuProfile(t, 1, "f"))
	if _, ok := tiny.Profile(id); ok || tiny.profiles.usage() != 0 {
		t.Fatal("oversized profile kept")
	}
}

func encodedSize(t *testing.T, p *profile.Profile) int {
	var b strings.Builder
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Len()
}

func TestProfileStoreDisabled(t *testing.T) {
	c, _ := newController(t, Config{ProfileStoreBytes: -1})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	id := mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(1)))
	ex.sink(id).AddProfile(cpuProfile(t, 1, "f"))
	if _, ok := c.Profile(id); ok || c.profiles.usage() != 0 || !state(t, c, id).Profile.Dropped {
		t.Fatal("profile kept although the store is disabled")
	}
}

// A profile without a period type (as off-CPU profiles once were) merges
// instead of panicking inside profile.Merge.
func TestProfileStoreMergesWithoutPeriodType(t *testing.T) {
	s := newProfileStore(1 << 20)
	mk := func() *profile.Profile {
		fn := &profile.Function{ID: 1, Name: "wait"}
		loc := &profile.Location{ID: 1, Line: []profile.Line{{Function: fn}}}
		return &profile.Profile{
			SampleType: []*profile.ValueType{{Type: "events", Unit: "nanoseconds"}},
			Sample:     []*profile.Sample{{Location: []*profile.Location{loc}, Value: []int64{5}}},
			Location:   []*profile.Location{loc},
			Function:   []*profile.Function{fn},
		}
	}
	for range 2 {
		if err := s.add("t1", time.Now(), mk()); err != nil {
			t.Fatal(err)
		}
	}
}
