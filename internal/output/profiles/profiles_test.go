package profiles

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pprofiletest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pprofile"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
)

var (
	exeMapping    = &Mapping{Start: 0x400000, Limit: 0x500000, Offset: 0, File: "/usr/bin/app", BuildID: "abcdef0123", GoBuildID: "go-id/xyz"}
	libcMapping   = &Mapping{Start: 0x7f0000000000, Limit: 0x7f0000100000, Offset: 0x28000, File: "/lib/libc.so.6", BuildID: "c0ffee"}
	kernelMapping = &Mapping{Start: 0xffffffff81000000, Limit: 0xffffffff82000000, File: KernelMappingFile}
)

func testTask() control.Task {
	return control.Task{
		ID: "t-42", Policy: "checkout-cpu", Target: policy.TargetOnCPU, Duration: 10 * time.Second,
		Causes: []control.Cause{
			{Monitor: policy.MonitorProcessCPU, Threshold: 80, Period: 10, Count: 3, Values: []float64{81.5, 90, 99.25},
				At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
			{Monitor: policy.MonitorHTTPErrorRate, Threshold: 5, Period: 10, Count: 2, Values: []float64{7, 9}, URIRegex: "^/api"},
		},
	}
}

func testProfile(kind Kind) *Profile {
	start := time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)
	hotA := Frame{Function: "main.hotA", File: "/src/app/main.go", Line: 20, Address: 0x401234, Mapping: exeMapping, Type: FrameGo}
	mainFn := Frame{Function: "main.main", File: "/src/app/main.go", Line: 50, Address: 0x401500, Mapping: exeMapping, Type: FrameGo}
	read := Frame{Function: "read", Address: 0x7f0000001234, Mapping: libcMapping, Type: FrameNative}
	unknown := Frame{Address: 0x7f0000009999, Mapping: libcMapping, Type: FrameNative}
	ksys := Frame{Function: "vfs_read", Address: 0xffffffff81234567, Mapping: kernelMapping, Type: FrameKernel}
	cpp := Frame{Function: "ns::Widget::spin", SystemName: "_ZN2ns6Widget4spinEv", Address: 0x401800, Mapping: exeMapping, Type: FrameNative}
	return &Profile{
		Kind:  kind,
		Start: start,
		End:   start.Add(10 * time.Second),
		Samples: []Sample{
			{Frames: []Frame{hotA, mainFn}, Value: 75},
			{Frames: []Frame{ksys, read, unknown, mainFn}, Value: 20},
			{Frames: []Frame{cpp, mainFn}, Value: 5},
		},
		Resource:   map[string]any{"service.name": "checkout", "process.pid": int64(1234), "host.name": "h1"},
		Attributes: TaskAttributes(testTask()),
	}
}

func TestTaskAttributes(t *testing.T) {
	a := TaskAttributes(testTask())
	want := map[string]any{
		AttrTaskID: "t-42", AttrPolicyName: "checkout-cpu", AttrTarget: "on_cpu",
		AttrTriggerMonitor: "process_cpu", AttrTriggerThreshold: 80.0, AttrTriggerPeriod: int64(10),
		AttrTriggerCount: int64(3), AttrTriggerTime: "2026-01-02T03:04:05Z",
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("%s = %v (%T), want %v", k, a[k], a[k], v)
		}
	}
	if v, ok := a[AttrTriggerValues].([]float64); !ok || len(v) != 3 || v[2] != 99.25 {
		t.Errorf("%s = %v", AttrTriggerValues, a[AttrTriggerValues])
	}
	if m, ok := a[AttrTriggerMonitors].([]string); !ok || len(m) != 2 || m[1] != "http_error_rate" {
		t.Errorf("%s = %v", AttrTriggerMonitors, a[AttrTriggerMonitors])
	}
	manual := TaskAttributes(control.Task{ID: "m-1", Target: policy.TargetOffCPU})
	if len(manual) != 2 || manual[AttrTarget] != "off_cpu" {
		t.Errorf("manual task attributes: %v", manual)
	}
}

func attrMap(t *testing.T, dict pprofile.ProfilesDictionary, indices pcommon.Int32Slice) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, i := range indices.All() {
		kv := dict.AttributeTable().At(int(i))
		out[dict.StringTable().At(int(kv.KeyStrindex()))] = kv.Value().AsRaw()
	}
	return out
}

func TestToPprofileOnCPU(t *testing.T) {
	p := testProfile(OnCPU(99))
	out := ToPprofile("github.com/contprof/contprof", p, testProfile(OnCPU(99)))
	// Round trip through the wire format, as an exporter would.
	raw, err := (&pprofile.ProtoMarshaler{}).MarshalProfiles(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := (&pprofile.ProtoUnmarshaler{}).UnmarshalProfiles(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceProfiles().Len() != 2 {
		t.Fatalf("%d resource profiles, want 2", got.ResourceProfiles().Len())
	}
	dict := got.Dictionary()
	str := func(i int32) string { return dict.StringTable().At(int(i)) }
	for r := 0; r < 2; r++ {
		rp := got.ResourceProfiles().At(r)
		if v, _ := rp.Resource().Attributes().Get("service.name"); v.Str() != "checkout" {
			t.Errorf("resource service.name = %q", v.Str())
		}
		if v, _ := rp.Resource().Attributes().Get("process.pid"); v.Int() != 1234 {
			t.Errorf("resource process.pid = %v", v.AsRaw())
		}
		sp := rp.ScopeProfiles().At(0)
		if sp.Scope().Name() != "github.com/contprof/contprof" {
			t.Errorf("scope name %q", sp.Scope().Name())
		}
		prof := sp.Profiles().At(0)
		if err := pprofiletest.ValidateProfile(dict, prof); err != nil {
			t.Fatalf("invalid profile: %v", err)
		}
		if str(prof.SampleType().TypeStrindex()) != "samples" || str(prof.SampleType().UnitStrindex()) != "count" {
			t.Errorf("sample type %s/%s", str(prof.SampleType().TypeStrindex()), str(prof.SampleType().UnitStrindex()))
		}
		if str(prof.PeriodType().TypeStrindex()) != "cpu" || str(prof.PeriodType().UnitStrindex()) != "nanoseconds" || prof.Period() != int64(time.Second)/99 {
			t.Errorf("period type %s/%s period %d", str(prof.PeriodType().TypeStrindex()), str(prof.PeriodType().UnitStrindex()), prof.Period())
		}
		if prof.Time().AsTime() != p.Start || prof.DurationNano() != uint64(10*time.Second) {
			t.Errorf("time %v duration %d", prof.Time().AsTime(), prof.DurationNano())
		}
		if prof.ProfileID().IsEmpty() {
			t.Error("empty profile id")
		}
		attrs := attrMap(t, dict, prof.AttributeIndices())
		if attrs[AttrTaskID] != "t-42" || attrs[AttrTriggerThreshold] != 80.0 || attrs[AttrTriggerMonitor] != "process_cpu" {
			t.Errorf("profile attributes: %v", attrs)
		}
		if v, ok := attrs[AttrTriggerValues].([]any); !ok || len(v) != 3 {
			t.Errorf("trigger values: %v", attrs[AttrTriggerValues])
		}

		var total int64
		kinds := map[string]int{}
		for _, s := range prof.Samples().All() {
			total += s.Values().At(0)
			stack := dict.StackTable().At(int(s.StackIndex()))
			for j, li := range stack.LocationIndices().All() {
				loc := dict.LocationTable().At(int(li))
				ft, _ := attrMap(t, dict, loc.AttributeIndices())[AttrFrameType].(string)
				kinds[ft]++
				m := dict.MappingTable().At(int(loc.MappingIndex()))
				if loc.Address() < m.MemoryStart() || loc.Address() >= m.MemoryLimit() {
					t.Errorf("location %#x outside its mapping [%#x, %#x)", loc.Address(), m.MemoryStart(), m.MemoryLimit())
				}
				if j == 0 && s.Values().At(0) == 75 {
					fn := dict.FunctionTable().At(int(loc.Lines().At(0).FunctionIndex()))
					if str(fn.NameStrindex()) != "main.hotA" || loc.Lines().At(0).Line() != 20 || ft != "go" {
						t.Errorf("leaf of the hot stack: %s line %d type %s", str(fn.NameStrindex()), loc.Lines().At(0).Line(), ft)
					}
					mattr := attrMap(t, dict, m.AttributeIndices())
					if mattr[AttrGNUBuildID] != "abcdef0123" || mattr[AttrGoBuildID] != "go-id/xyz" || str(m.FilenameStrindex()) != "/usr/bin/app" {
						t.Errorf("mapping: %s %v", str(m.FilenameStrindex()), mattr)
					}
				}
			}
		}
		if total != 100 {
			t.Errorf("sample total %d, want 100", total)
		}
		if kinds["go"] == 0 || kinds["native"] == 0 || kinds["kernel"] == 0 || kinds[""] != 0 {
			t.Errorf("frame types: %v", kinds)
		}
	}
	// Shared dictionary: the second profile added no new locations.
	if n := dict.LocationTable().Len(); n != 1+6 {
		t.Errorf("%d locations, want 7 (zero value + 6 distinct)", n)
	}
}

func TestToPprofileOffCPU(t *testing.T) {
	out := ToPprofile("s", testProfile(OffCPU()))
	dict := out.Dictionary()
	prof := out.ResourceProfiles().At(0).ScopeProfiles().At(0).Profiles().At(0)
	if err := pprofiletest.ValidateProfile(dict, prof); err != nil {
		t.Fatal(err)
	}
	str := func(i int32) string { return dict.StringTable().At(int(i)) }
	if str(prof.SampleType().TypeStrindex()) != "off_cpu" || str(prof.SampleType().UnitStrindex()) != "nanoseconds" || prof.Period() != 0 {
		t.Errorf("off-CPU sample type %s/%s period %d", str(prof.SampleType().TypeStrindex()), str(prof.SampleType().UnitStrindex()), prof.Period())
	}
	pp := testProfile(OffCPU()).Pprof()
	if err := pp.CheckValid(); err != nil {
		t.Fatal(err)
	}
	if len(pp.SampleType) != 1 || pp.SampleType[0].Type != "off_cpu" || pp.SampleType[0].Unit != "nanoseconds" {
		t.Errorf("off-CPU pprof sample types: %v", pp.SampleType)
	}
}

func TestPprof(t *testing.T) {
	p := testProfile(OnCPU(99))
	pp := p.Pprof()
	if err := pp.CheckValid(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := pp.Write(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.SampleType) != 2 || back.SampleType[0].Type != "samples" || back.SampleType[1].Type != "cpu" ||
		back.SampleType[1].Unit != "nanoseconds" || back.DefaultSampleType != "cpu" {
		t.Errorf("sample types %v default %q", back.SampleType, back.DefaultSampleType)
	}
	if back.Period != int64(time.Second)/99 || back.PeriodType.Type != "cpu" || back.TimeNanos != p.Start.UnixNano() || back.DurationNanos != int64(10*time.Second) {
		t.Errorf("period %d %v time %d duration %d", back.Period, back.PeriodType, back.TimeNanos, back.DurationNanos)
	}
	var count, cpu int64
	for _, s := range back.Sample {
		count += s.Value[0]
		cpu += s.Value[1]
		if s.Value[1] != s.Value[0]*(int64(time.Second)/99) {
			t.Errorf("cpu value %d for %d samples", s.Value[1], s.Value[0])
		}
	}
	if count != 100 {
		t.Errorf("total %d, want 100", count)
	}
	leaf := back.Sample[0].Location[0]
	if leaf.Line[0].Function.Name != "main.hotA" || leaf.Mapping.File != "/usr/bin/app" || leaf.Mapping.BuildID != "abcdef0123" || !leaf.Mapping.HasFunctions {
		t.Errorf("leaf: %+v mapping %+v", leaf.Line, leaf.Mapping)
	}
	var cppSeen bool
	for _, f := range back.Function {
		if f.Name == "ns::Widget::spin" && f.SystemName == "_ZN2ns6Widget4spinEv" {
			cppSeen = true
		}
	}
	if !cppSeen {
		t.Error("demangled function lost its system name")
	}
	comments := strings.Join(back.Comments, "\n")
	for _, want := range []string{"contprof.task.id=t-42", "contprof.policy.name=checkout-cpu", "service.name=checkout"} {
		if !strings.Contains(comments, want) {
			t.Errorf("comments lack %q:\n%s", want, comments)
		}
	}
	// Profiles of successive intervals merge (the extension keeps one per task).
	merged, err := profile.Merge([]*profile.Profile{pp, testProfile(OnCPU(99)).Pprof()})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, s := range merged.Sample {
		n += s.Value[0]
	}
	if n != 200 {
		t.Errorf("merged total %d, want 200", n)
	}
}

func TestEmptyProfile(t *testing.T) {
	p := &Profile{Kind: OnCPU(99)}
	out := ToPprofile("s", p)
	prof := out.ResourceProfiles().At(0).ScopeProfiles().At(0).Profiles().At(0)
	if err := pprofiletest.ValidateProfile(out.Dictionary(), prof); err != nil {
		t.Fatal(err)
	}
	if err := p.Pprof().CheckValid(); err != nil {
		t.Fatal(err)
	}
}

func TestPutAny(t *testing.T) {
	m := pcommon.NewMap()
	PutAttributes(m, map[string]any{
		"s": "x", "b": true, "i": 3, "u": uint64(1 << 63), "f": float32(1.5), "t": time.Unix(0, 0),
		"ss": []string{"a"}, "any": []any{1, "x"}, "m": map[string]any{"k": 1}, "d": 2 * time.Second, "st": struct{ A int }{1},
	})
	want := map[string]any{
		"s": "x", "b": true, "i": int64(3), "u": "9223372036854775808", "f": 1.5, "t": "1970-01-01T00:00:00Z",
		"d": "2s", "st": "{1}",
	}
	for k, v := range want {
		got, _ := m.Get(k)
		if got.AsRaw() != v {
			t.Errorf("%s: %v (%T), want %v", k, got.AsRaw(), got.AsRaw(), v)
		}
	}
	if v, _ := m.Get("any"); v.Slice().Len() != 2 {
		t.Errorf("any: %v", v.AsRaw())
	}
}
