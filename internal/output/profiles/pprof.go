package profiles

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/google/pprof/profile"
)

// Pprof converts p to a google pprof profile. Counted kinds with a period
// (on-CPU) get a second value, count × period, so that `go tool pprof`
// shows CPU time as it does for Go's own CPU profiles. Resource and trigger
// attributes become comments ("key=value").
func (p *Profile) Pprof() *profile.Profile {
	out := &profile.Profile{
		SampleType:    []*profile.ValueType{{Type: p.Kind.SampleType, Unit: p.Kind.SampleUnit}},
		TimeNanos:     p.Start.UnixNano(),
		DurationNanos: p.End.Sub(p.Start).Nanoseconds(),
		Period:        p.Kind.Period,
	}
	if p.Start.IsZero() {
		out.TimeNanos = 0
	}
	scaled := p.Kind.Period > 0 && p.Kind.SampleUnit == "count"
	// pprof tools (and profile.Merge) expect a period type; a kind
	// without a sampling period (off-CPU) uses its sample type.
	out.PeriodType = &profile.ValueType{Type: p.Kind.SampleType, Unit: p.Kind.SampleUnit}
	if p.Kind.PeriodType != "" {
		out.PeriodType = &profile.ValueType{Type: p.Kind.PeriodType, Unit: p.Kind.PeriodUnit}
	}
	if scaled {
		out.SampleType = append(out.SampleType, &profile.ValueType{Type: p.Kind.PeriodType, Unit: p.Kind.PeriodUnit})
		out.DefaultSampleType = p.Kind.PeriodType
	}

	type funcKey struct{ name, system, file string }
	type locKey struct {
		addr    uint64
		mapping *profile.Mapping
		fn      funcKey
		line    int64
	}
	mappings := map[Mapping]*profile.Mapping{}
	functions := map[funcKey]*profile.Function{}
	locations := map[locKey]*profile.Location{}

	mappingOf := func(f *Frame) *profile.Mapping {
		if f.Mapping == nil {
			return nil
		}
		m, ok := mappings[*f.Mapping]
		if !ok {
			m = &profile.Mapping{
				ID:      uint64(len(out.Mapping) + 1),
				Start:   f.Mapping.Start,
				Limit:   f.Mapping.Limit,
				Offset:  f.Mapping.Offset,
				File:    f.Mapping.File,
				BuildID: f.Mapping.BuildID,
			}
			if m.BuildID == "" {
				m.BuildID = f.Mapping.GoBuildID
			}
			// Every location was symbolized on the host, from every
			// symbol source it has (.symtab, .dynsym, MiniDebugInfo,
			// debug files, Go line tables, perf maps): an address left
			// without a name has no symbol there. So function
			// information is as resolved as it gets, and pprof must not
			// try to symbolize again (remotely it would POST to a
			// symbolz endpoint next to the download URL and fail). The
			// build id stays for a backend that has more.
			m.HasFunctions = true
			mappings[*f.Mapping] = m
			out.Mapping = append(out.Mapping, m)
		}
		if f.File != "" {
			m.HasFilenames = true
		}
		if f.Line != 0 {
			m.HasLineNumbers = true
		}
		return m
	}

	for _, s := range p.Samples {
		ps := &profile.Sample{Value: []int64{s.Value}}
		if len(s.Labels) > 0 {
			ps.Label = make(map[string][]string, len(s.Labels))
			for k, v := range s.Labels {
				ps.Label[k] = []string{v}
			}
		}
		if scaled {
			ps.Value = append(ps.Value, s.Value*p.Kind.Period)
		}
		ps.Location = make([]*profile.Location, 0, len(s.Frames))
		for i := range s.Frames {
			f := &s.Frames[i]
			m := mappingOf(f)
			fk := funcKey{f.Function, f.SystemName, f.File}
			lk := locKey{addr: f.Address, mapping: m, fn: fk, line: f.Line}
			loc, ok := locations[lk]
			if !ok {
				loc = &profile.Location{ID: uint64(len(out.Location) + 1), Mapping: m, Address: f.Address}
				if f.Function != "" {
					fn, ok := functions[fk]
					if !ok {
						system := f.SystemName
						if system == "" {
							system = f.Function
						}
						fn = &profile.Function{ID: uint64(len(out.Function) + 1), Name: f.Function, SystemName: system, Filename: f.File}
						functions[fk] = fn
						out.Function = append(out.Function, fn)
					}
					loc.Line = []profile.Line{{Function: fn, Line: f.Line}}
				}
				locations[lk] = loc
				out.Location = append(out.Location, loc)
			}
			ps.Location = append(ps.Location, loc)
		}
		out.Sample = append(out.Sample, ps)
	}

	mainFirst(out.Mapping, p.Resource)
	out.Comments = append(commentsOf(p.Resource), commentsOf(p.Attributes)...)
	return out
}

// AttrExecutablePath is the resource attribute naming the process's
// executable (OpenTelemetry semantic conventions).
const AttrExecutablePath = "process.executable.path"

// mainFirst moves the main executable's mapping to the front (pprof names
// the program after the first mapping): the mapping of the resource's
// executable path, else the first one that is neither the kernel nor a
// shared library. IDs are renumbered in the new order.
func mainFirst(ms []*profile.Mapping, resource map[string]any) {
	exe, _ := resource[AttrExecutablePath].(string)
	main := -1
	for i, m := range ms {
		if exe != "" && m.File == exe {
			main = i
			break
		}
	}
	if main < 0 {
		for i, m := range ms {
			if m.File != KernelMappingFile && !strings.HasPrefix(m.File, "[") && !isSharedLibrary(m.File) {
				main = i
				break
			}
		}
	}
	if main > 0 {
		m := ms[main]
		copy(ms[1:main+1], ms[:main])
		ms[0] = m
	}
	for i, m := range ms {
		m.ID = uint64(i + 1)
	}
}

func isSharedLibrary(file string) bool {
	base := path.Base(file)
	return strings.HasSuffix(base, ".so") || strings.Contains(base, ".so.")
}

func commentsOf(attrs map[string]any) []string {
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s=%v", k, attrs[k]))
	}
	return out
}
