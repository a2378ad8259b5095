package profiles

import (
	"testing"
)

// The pprof download names the program (main executable first) and asks
// for no symbolization: every mapping is marked as symbolized, also those
// whose addresses have no name.
func TestPprofMappings(t *testing.T) {
	kernel := &Mapping{File: KernelMappingFile}
	libc := &Mapping{Start: 0x7f00, Limit: 0x8f00, File: "/usr/lib/libc.so.6", BuildID: "aa"}
	exe := &Mapping{Start: 0x1000, Limit: 0x2000, File: "/usr/bin/yes", BuildID: "bb"}
	p := &Profile{
		Kind:     OnCPU(99),
		Resource: map[string]any{AttrExecutablePath: "/usr/bin/yes"},
		Samples: []Sample{{Value: 3, Frames: []Frame{
			{Function: "write_null", Mapping: kernel, Type: FrameKernel, Address: 0xffff1},
			{Function: "write", Mapping: libc, Address: 0x7f10},
			{Mapping: exe, Address: 0x1010}, // stripped: no name
		}}},
	}
	out := p.Pprof()
	if len(out.Mapping) != 3 || out.Mapping[0].File != "/usr/bin/yes" {
		t.Fatalf("first mapping %q of %d, want /usr/bin/yes", out.Mapping[0].File, len(out.Mapping))
	}
	for i, m := range out.Mapping {
		if m.ID != uint64(i+1) {
			t.Errorf("mapping %d has id %d", i, m.ID)
		}
		if !m.HasFunctions {
			t.Errorf("mapping %s not marked as symbolized: pprof would try symbolz", m.File)
		}
	}
	if err := out.CheckValid(); err != nil {
		t.Fatal(err)
	}
	// Without the resource: the first mapping that is neither the kernel
	// nor a shared library.
	p.Resource = nil
	if out := p.Pprof(); out.Mapping[0].File != "/usr/bin/yes" {
		t.Errorf("without resource, first mapping %q", out.Mapping[0].File)
	}
}
