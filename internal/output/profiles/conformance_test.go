package profiles

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pprofile"
)

func TestConformanceOfBothKinds(t *testing.T) {
	for _, k := range []Kind{OnCPU(99), OffCPU()} {
		pd := ToPprofile("test", testProfile(k))
		if errs := Conformance(pd); len(errs) != 0 {
			t.Errorf("%s: %v", k.SampleType, errs)
		}
	}
}

func TestConventions(t *testing.T) {
	p := testProfile(OffCPU())
	p.Resource = map[string]any{"process.executable.name": "worker", "process.pid": int64(7)}
	seen := p.Start.Add(3 * time.Second)
	p.Samples[0].Time = seen
	exe := *exeMapping
	exe.HTLHash = "00112233445566778899aabbccddeeff"
	p.Samples[0].Frames[0].Mapping = &exe
	pd := ToPprofile("test", p)
	d := pd.Dictionary()
	rp := pd.ResourceProfiles().At(0)
	if v, _ := rp.Resource().Attributes().Get("service.name"); v.Str() != "unknown_service:worker" {
		t.Errorf("service.name %q, want unknown_service:worker", v.Str())
	}
	prof := rp.ScopeProfiles().At(0).Profiles().At(0)
	if typ := d.StringTable().At(int(prof.SampleType().TypeStrindex())); typ != "off_cpu" {
		t.Errorf("sample type %q", typ)
	}
	s0, s1 := prof.Samples().At(0), prof.Samples().At(1)
	if s0.TimestampsUnixNano().Len() != 1 || s0.TimestampsUnixNano().At(0) != uint64(seen.UnixNano()) {
		t.Errorf("sample 0 timestamps %v, want [%d]", s0.TimestampsUnixNano().AsRaw(), seen.UnixNano())
	}
	if s1.TimestampsUnixNano().Len() != 1 || s1.TimestampsUnixNano().At(0) != uint64(p.Start.UnixNano()) {
		t.Errorf("sample 1 timestamps %v, want the interval start %d", s1.TimestampsUnixNano().AsRaw(), p.Start.UnixNano())
	}
	var found map[string]string
	for i := 1; i < d.MappingTable().Len(); i++ {
		m := map[string]string{}
		for _, ai := range d.MappingTable().At(i).AttributeIndices().AsRaw() {
			kv := d.AttributeTable().At(int(ai))
			m[d.StringTable().At(int(kv.KeyStrindex()))] = kv.Value().AsString()
		}
		if m[AttrHTLHashBuildID] != "" {
			found = m
		}
	}
	for k, v := range map[string]string{AttrGNUBuildID: "abcdef0123", AttrGoBuildID: "go-id/xyz", AttrHTLHashBuildID: exe.HTLHash} {
		if found[k] != v {
			t.Errorf("mapping attribute %s = %q, want %q (all: %v)", k, found[k], v, found)
		}
	}
	if errs := Conformance(pd); len(errs) != 0 {
		t.Error(errs)
	}
	// Without an executable name the fallback is bare.
	p.Resource = map[string]any{"process.pid": int64(7)}
	if v, _ := ToPprofile("test", p).ResourceProfiles().At(0).Resource().Attributes().Get("service.name"); v.Str() != "unknown_service" {
		t.Errorf("service.name %q, want unknown_service", v.Str())
	}
}

// TestConformanceFindsViolations breaks one rule at a time.
func TestConformanceFindsViolations(t *testing.T) {
	cases := map[string]struct {
		mutate func(pprofile.Profiles)
		want   string
	}{
		"legacy off-CPU type": {func(pd pprofile.Profiles) {
			prof(pd).SetPeriod(0)
			prof(pd).SampleType().SetTypeStrindex(int32(pd.Dictionary().StringTable().Len()))
			pd.Dictionary().StringTable().Append("events")
			prof(pd).SampleType().SetUnitStrindex(int32(pd.Dictionary().StringTable().Len()))
			pd.Dictionary().StringTable().Append("nanoseconds")
		}, `profile type "events:nanoseconds::"`},
		"no service.name": {func(pd pprofile.Profiles) {
			pd.ResourceProfiles().At(0).Resource().Attributes().Remove("service.name")
		}, "no service.name"},
		"stack out of range": {func(pd pprofile.Profiles) {
			prof(pd).Samples().At(0).SetStackIndex(9999)
		}, "stack index 9999 out of range"},
		"location out of range": {func(pd pprofile.Profiles) {
			pd.Dictionary().StackTable().At(1).LocationIndices().Append(-1)
		}, "location index -1 out of range"},
		"function without name": {func(pd pprofile.Profiles) {
			pd.Dictionary().FunctionTable().At(1).SetNameStrindex(0)
		}, "function 1: empty name"},
		"string out of range": {func(pd pprofile.Profiles) {
			pd.Dictionary().MappingTable().At(1).SetFilenameStrindex(1 << 20)
		}, "string index 1048576 out of range"},
		"no timestamps": {func(pd pprofile.Profiles) {
			prof(pd).Samples().At(0).TimestampsUnixNano().FromRaw(nil)
		}, "0 timestamps for 1 values"},
		"timestamp outside": {func(pd pprofile.Profiles) {
			prof(pd).Samples().At(0).TimestampsUnixNano().FromRaw([]uint64{1})
		}, "outside the profile's interval"},
		"two values": {func(pd pprofile.Profiles) {
			prof(pd).Samples().At(0).Values().Append(1)
		}, "2 values, want 1"},
		"no dictionary": {func(pd pprofile.Profiles) {
			pprofile.NewProfilesDictionary().CopyTo(pd.Dictionary())
		}, "string table missing"},
	}
	for name, tc := range cases {
		pd := ToPprofile("test", testProfile(OnCPU(99)))
		tc.mutate(pd)
		errs := Conformance(pd)
		var all strings.Builder
		for _, e := range errs {
			all.WriteString(e.Error() + "\n")
		}
		if !strings.Contains(all.String(), tc.want) {
			t.Errorf("%s: errors %q, want one containing %q", name, all.String(), tc.want)
		}
	}
}

func prof(pd pprofile.Profiles) pprofile.Profile {
	return pd.ResourceProfiles().At(0).ScopeProfiles().At(0).Profiles().At(0)
}

func TestHTLHash(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hash := func(p string) string {
		h, err := HTLHash(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 32 {
			t.Fatalf("htlhash %q: want 32 hex digits", h)
		}
		return h
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
	a := hash(write("a", big))
	// Only head, tail and length count: a byte in the middle does not.
	mid := bytes.Clone(big)
	mid[8192] ^= 0xff
	if b := hash(write("b", mid)); b != a {
		t.Errorf("middle byte changed the hash: %s vs %s", b, a)
	}
	head := bytes.Clone(big)
	head[10] ^= 0xff
	tail := bytes.Clone(big)
	tail[len(tail)-10] ^= 0xff
	longer := append(bytes.Clone(big[:8192]), big...) // same head and tail, other length
	for name, b := range map[string][]byte{"head": head, "tail": tail, "length": longer} {
		if hash(write(name, b)) == a {
			t.Errorf("a change in the %s kept the hash", name)
		}
	}
	hash(write("small", []byte("tiny"))) // smaller than 4 KiB: head and tail overlap
	if _, err := HTLHash(filepath.Join(dir, "missing")); err == nil {
		t.Error("no error for a missing file")
	}
}
