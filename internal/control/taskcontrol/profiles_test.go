package taskcontrol

import (
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/output/flame"
	"github.com/contprof/contprof/internal/output/profiles"
)

// download returns the task's profile as parsed pprof, failing when there
// is none.
func download(t *testing.T, c *Controller, id string) (*profile.Profile, []byte) {
	t.Helper()
	data, ok, err := c.Profile(id)
	if err != nil || !ok {
		t.Fatalf("profile of %s: ok=%v err=%v", id, ok, err)
	}
	p, err := profile.ParseData(data)
	if err != nil {
		t.Fatal(err)
	}
	return p, data
}

func TestProfilesMergedPerTask(t *testing.T) {
	c, _ := newController(t, Config{})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	id := mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(1)))
	if _, ok, _ := c.Profile(id); ok {
		t.Fatal("profile before any was handed over")
	}
	s := ex.sink(id)
	first := cpuProfile(t, 3, "work")
	s.AddProfile(first)
	s.AddProfile(cpuProfile(t, 4, "work"))
	last := cpuProfile(t, 5, "other")
	last.End = first.End.Add(time.Hour)
	s.AddProfile(last)
	s.AddProfile(nil)
	p, data := download(t, c, id)
	perLeaf := map[string]int64{}
	for _, smp := range p.Sample {
		perLeaf[smp.Location[0].Line[0].Function.Name] += smp.Value[0]
		// the scaled value is count × period
		if smp.Value[1] != smp.Value[0]*p.Period {
			t.Fatalf("sample values %v with period %d", smp.Value, p.Period)
		}
	}
	if perLeaf["work"] != 7 || perLeaf["other"] != 5 || len(p.Sample) != 2 {
		t.Fatalf("merged samples %v in %d samples", perLeaf, len(p.Sample))
	}
	if len(p.Mapping) != 1 || p.Mapping[0].File != "/bin/app" || p.Mapping[0].BuildID != "abc" {
		t.Fatalf("mappings %+v", p.Mapping)
	}
	if p.TimeNanos != first.Start.UnixNano() || p.DurationNanos != last.End.Sub(first.Start).Nanoseconds() {
		t.Fatalf("time %d duration %d: want the span of every interval", p.TimeNanos, p.DurationNanos)
	}
	if !strings.Contains(strings.Join(p.Comments, " "), "contprof.task.id=x") {
		t.Fatalf("comments %q lack the trigger context", p.Comments)
	}
	if data[0] != 0x1f || data[1] != 0x8b {
		t.Fatal("download is not gzip")
	}
	ti := state(t, c, id)
	if ti.Profile.Profiles != 3 || ti.Profile.Bytes <= 0 || int64(ti.Profile.Bytes) != c.profiles.usage() || ti.Profile.Dropped {
		t.Fatalf("profile info %+v (usage %d)", ti.Profile, c.profiles.usage())
	}

	// A profile of another kind is refused; the merged one stays.
	bad := cpuProfile(t, 1, "x")
	bad.Kind = profiles.OffCPU()
	s.AddProfile(bad)
	if ti := state(t, c, id); !strings.Contains(ti.Profile.Error, "merge") || ti.Profile.Profiles != 3 {
		t.Fatalf("profile info %+v", ti.Profile)
	}
	invalid := cpuProfile(t, 1, "x")
	invalid.Samples[0].Value = -1
	s.AddProfile(invalid)
	if ti := state(t, c, id); !strings.Contains(ti.Profile.Error, "invalid profile") || !strings.Contains(ti.Profile.Error, "samples[0].value") {
		t.Fatalf("profile info %+v", ti.Profile)
	}
	if again, _ := download(t, c, id); len(again.Sample) != 2 {
		t.Fatal("a refused profile changed the stored one")
	}
}

// Merging a known stack costs no memory; a new one costs its estimate.
func TestProfileStoreEstimate(t *testing.T) {
	s := newProfileStore(1 << 30)
	now := time.Now()
	if err := s.add("t", now, cpuProfile(t, 1, "a")); err != nil {
		t.Fatal(err)
	}
	one := s.usage()
	for range 100 {
		if err := s.add("t", now, cpuProfile(t, 1, "a")); err != nil {
			t.Fatal(err)
		}
	}
	if s.usage() != one {
		t.Fatalf("merging a known stack grew the estimate from %d to %d", one, s.usage())
	}
	if err := s.add("t", now, cpuProfile(t, 1, "b")); err != nil {
		t.Fatal(err)
	}
	// The new stack shares runtime.main, the mapping and its strings.
	if grown := s.usage() - one; grown <= 0 || grown >= one {
		t.Fatalf("a stack sharing all but its leaf cost %d, the first %d", grown, one)
	}
	// The stored estimate is at least the frames it holds.
	if min := 3 * frameCost; s.usage() < min {
		t.Fatalf("estimate %d below the stored frames' size %d", s.usage(), min)
	}
}

func TestProfileStoreBound(t *testing.T) {
	probe := newProfileStore(1 << 30)
	if err := probe.add("p", time.Now(), cpuProfile(t, 1, "f")); err != nil {
		t.Fatal(err)
	}
	size := probe.usage()
	// Room for two profiles, not three.
	bound := 2*size + size/2
	c, clk := newController(t, Config{ProfileStoreBytes: bound})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	var ids []string
	for i := range 3 {
		clk.Add(time.Second)
		id := mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(i+1)))
		ex.sink(id).AddProfile(cpuProfile(t, 1, "f"))
		ids = append(ids, id)
	}
	if _, ok, _ := c.Profile(ids[0]); ok {
		t.Fatal("oldest task's profile was not dropped")
	}
	if ti := state(t, c, ids[0]); !ti.Profile.Dropped {
		t.Fatal("drop not recorded")
	}
	for _, id := range ids[1:] {
		download(t, c, id)
	}
	if u := c.profiles.usage(); u > bound {
		t.Fatalf("usage %d over the bound", u)
	}
	// A dropped task's later profiles are not stored again.
	ex.sink(ids[0]).AddProfile(cpuProfile(t, 1, "f"))
	if _, ok, _ := c.Profile(ids[0]); ok {
		t.Fatal("evicted task stored again")
	}

	// A profile larger than the whole bound is not kept.
	tiny, _ := newController(t, Config{ProfileStoreBytes: 10})
	ex2 := newExecutor()
	defer tiny.RegisterExecutor(ex2)()
	id := mustAccept(t, tiny, req(policy.TargetOnCPU, 0, proc(1)))
	ex2.sink(id).AddProfile(cpuProfile(t, 1, "f"))
	if _, ok, _ := tiny.Profile(id); ok || tiny.profiles.usage() != 0 {
		t.Fatal("oversized profile kept")
	}
}

func TestProfileStoreDisabled(t *testing.T) {
	c, _ := newController(t, Config{ProfileStoreBytes: -1})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	id := mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(1)))
	ex.sink(id).AddProfile(cpuProfile(t, 1, "f"))
	if _, ok, _ := c.Profile(id); ok || c.profiles.usage() != 0 || !state(t, c, id).Profile.Dropped {
		t.Fatal("profile kept although the store is disabled")
	}
}

// An off-CPU profile (no sampling period) downloads with a period type:
// pprof tools need one.
func TestProfileStoreOffCPUDownload(t *testing.T) {
	c, _ := newController(t, Config{})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	id := mustAccept(t, c, req(policy.TargetOffCPU, 0, proc(1)))
	p := cpuProfile(t, 5000, "wait")
	p.Kind = profiles.OffCPU()
	ex.sink(id).AddProfile(p)
	ex.sink(id).AddProfile(p)
	got, _ := download(t, c, id)
	if got.PeriodType == nil || got.SampleType[0].Type != "off_cpu" || got.Sample[0].Value[0] != 10000 {
		t.Fatalf("downloaded %+v", got)
	}
}

// Stacks are kept per report interval, labelled with its start, so that a
// single interval can still be shown (web UI flame graph).
func TestProfileStoreKeepsIntervals(t *testing.T) {
	s := newProfileStore(1 << 20)
	for _, start := range []int64{1000, 1003, 1003} {
		p := cpuProfile(t, 2, "work")
		p.Start = time.Unix(start, 0)
		if err := s.add("t", time.Now(), p); err != nil {
			t.Fatal(err)
		}
	}
	p, ok := s.profile("t")
	if !ok || len(p.Sample) != 2 {
		t.Fatalf("profile %v", p)
	}
	got := map[int64]int64{}
	for _, smp := range p.Sample {
		got[smp.NumLabel[flame.IntervalLabel][0]] += smp.Value[0]
		if smp.NumUnit[flame.IntervalLabel][0] != "seconds" {
			t.Fatalf("unit %v", smp.NumUnit)
		}
	}
	if got[1000] != 2 || got[1003] != 4 {
		t.Fatalf("per interval %v", got)
	}
}
