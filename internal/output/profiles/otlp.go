package profiles

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pprofile"
)

// ToPprofile converts profiles into one OTLP Profiles with a shared
// dictionary: one ResourceProfiles per profile (its process's resource),
// under an instrumentation scope named scopeName.
func ToPprofile(scopeName string, ps ...*Profile) pprofile.Profiles {
	b := newOTLPBuilder()
	for _, p := range ps {
		rp := b.out.ResourceProfiles().AppendEmpty()
		PutAttributes(rp.Resource().Attributes(), p.Resource)
		ensureServiceName(rp.Resource().Attributes())
		sp := rp.ScopeProfiles().AppendEmpty()
		sp.Scope().SetName(scopeName)
		b.addProfile(sp.Profiles().AppendEmpty(), p)
	}
	return b.out
}

// otlpBuilder fills a ProfilesDictionary through hash maps: the pprofile
// Set* helpers scan tables linearly, which is quadratic for real profiles.
type otlpBuilder struct {
	out       pprofile.Profiles
	dict      pprofile.ProfilesDictionary
	strings   map[string]int32
	functions map[[3]int32]int32
	mappings  map[Mapping]int32
	locations map[otlpLocKey]int32
	frames    map[Frame]int32 // fast path in front of locations
	stacks    map[string]int32
	attrs     map[string]int32
}

type otlpLocKey struct {
	addr    uint64
	mapping int32
	fn      int32
	line    int64
	ftype   FrameType
}

func newOTLPBuilder() *otlpBuilder {
	out := pprofile.NewProfiles()
	d := out.Dictionary()
	// Every table starts with its zero value, as the protocol requires.
	d.StringTable().Append("")
	d.MappingTable().AppendEmpty()
	d.LocationTable().AppendEmpty()
	d.FunctionTable().AppendEmpty()
	d.StackTable().AppendEmpty()
	d.AttributeTable().AppendEmpty()
	d.LinkTable().AppendEmpty()
	return &otlpBuilder{
		out:       out,
		dict:      d,
		strings:   map[string]int32{"": 0},
		functions: map[[3]int32]int32{},
		mappings:  map[Mapping]int32{},
		locations: map[otlpLocKey]int32{},
		frames:    map[Frame]int32{},
		stacks:    map[string]int32{"": 0},
		attrs:     map[string]int32{},
	}
}

func (b *otlpBuilder) str(s string) int32 {
	if i, ok := b.strings[s]; ok {
		return i
	}
	i := int32(b.dict.StringTable().Len())
	b.dict.StringTable().Append(s)
	b.strings[s] = i
	return i
}

func (b *otlpBuilder) attr(key string, value any) int32 {
	k := fmt.Sprintf("%s\x00%T\x00%v", key, value, value)
	if i, ok := b.attrs[k]; ok {
		return i
	}
	i := int32(b.dict.AttributeTable().Len())
	kv := b.dict.AttributeTable().AppendEmpty()
	kv.SetKeyStrindex(b.str(key))
	putAny(kv.Value(), value)
	b.attrs[k] = i
	return i
}

func (b *otlpBuilder) mapping(m *Mapping) int32 {
	if m == nil {
		return 0
	}
	if i, ok := b.mappings[*m]; ok {
		return i
	}
	i := int32(b.dict.MappingTable().Len())
	pm := b.dict.MappingTable().AppendEmpty()
	pm.SetMemoryStart(m.Start)
	pm.SetMemoryLimit(m.Limit)
	pm.SetFileOffset(m.Offset)
	pm.SetFilenameStrindex(b.str(m.File))
	if m.BuildID != "" {
		pm.AttributeIndices().Append(b.attr(AttrGNUBuildID, m.BuildID))
	}
	if m.GoBuildID != "" {
		pm.AttributeIndices().Append(b.attr(AttrGoBuildID, m.GoBuildID))
	}
	if m.HTLHash != "" {
		pm.AttributeIndices().Append(b.attr(AttrHTLHashBuildID, m.HTLHash))
	}
	b.mappings[*m] = i
	return i
}

func (b *otlpBuilder) function(f *Frame) int32 {
	system := f.SystemName
	if system == "" {
		system = f.Function
	}
	k := [3]int32{b.str(f.Function), b.str(system), b.str(f.File)}
	if i, ok := b.functions[k]; ok {
		return i
	}
	i := int32(b.dict.FunctionTable().Len())
	fn := b.dict.FunctionTable().AppendEmpty()
	fn.SetNameStrindex(k[0])
	fn.SetSystemNameStrindex(k[1])
	fn.SetFilenameStrindex(k[2])
	b.functions[k] = i
	return i
}

func (b *otlpBuilder) location(f *Frame) int32 {
	if i, ok := b.frames[*f]; ok {
		return i
	}
	i := b.newLocation(f)
	b.frames[*f] = i
	return i
}

func (b *otlpBuilder) newLocation(f *Frame) int32 {
	k := otlpLocKey{addr: f.Address, mapping: b.mapping(f.Mapping), line: f.Line, ftype: f.Type}
	if f.Function != "" {
		k.fn = b.function(f)
	}
	if i, ok := b.locations[k]; ok {
		return i
	}
	i := int32(b.dict.LocationTable().Len())
	loc := b.dict.LocationTable().AppendEmpty()
	loc.SetMappingIndex(k.mapping)
	loc.SetAddress(f.Address)
	if f.Function != "" {
		line := loc.Lines().AppendEmpty()
		line.SetFunctionIndex(k.fn)
		line.SetLine(f.Line)
	}
	if f.Type != "" {
		loc.AttributeIndices().Append(b.attr(AttrFrameType, string(f.Type)))
	}
	b.locations[k] = i
	return i
}

func (b *otlpBuilder) stack(frames []Frame) int32 {
	locs := make([]int32, len(frames))
	key := make([]byte, 4*len(frames))
	for i := range frames {
		locs[i] = b.location(&frames[i])
		binary.LittleEndian.PutUint32(key[4*i:], uint32(locs[i]))
	}
	if i, ok := b.stacks[string(key)]; ok {
		return i
	}
	i := int32(b.dict.StackTable().Len())
	b.dict.StackTable().AppendEmpty().LocationIndices().FromRaw(locs)
	b.stacks[string(key)] = i
	return i
}

func (b *otlpBuilder) addProfile(out pprofile.Profile, p *Profile) {
	var id [16]byte
	_, _ = rand.Read(id[:])
	out.SetProfileID(pprofile.ProfileID(id))
	out.SampleType().SetTypeStrindex(b.str(p.Kind.SampleType))
	out.SampleType().SetUnitStrindex(b.str(p.Kind.SampleUnit))
	out.PeriodType().SetTypeStrindex(b.str(p.Kind.PeriodType))
	out.PeriodType().SetUnitStrindex(b.str(p.Kind.PeriodUnit))
	out.SetPeriod(p.Kind.Period)
	if !p.Start.IsZero() {
		out.SetTime(pcommon.NewTimestampFromTime(p.Start))
		if d := p.End.Sub(p.Start); d > 0 {
			out.SetDurationNano(uint64(d))
		}
	}

	keys := make([]string, 0, len(p.Attributes))
	for k := range p.Attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out.AttributeIndices().Append(b.attr(k, p.Attributes[k]))
	}

	// One value and one timestamp per sample (equal lengths, as the
	// protocol pairs them): the stack's last sighting, else the start of
	// the interval it was aggregated over (the interval is [start, end)).
	samples := out.Samples()
	samples.EnsureCapacity(len(p.Samples))
	for i := range p.Samples {
		s := samples.AppendEmpty()
		s.SetStackIndex(b.stack(p.Samples[i].Frames))
		s.Values().Append(p.Samples[i].Value)
		for _, k := range slices.Sorted(maps.Keys(p.Samples[i].Labels)) {
			s.AttributeIndices().Append(b.attr(k, p.Samples[i].Labels[k]))
		}
		ts := p.Samples[i].Time
		if ts.IsZero() {
			ts = p.Start
		}
		if !ts.IsZero() {
			s.TimestampsUnixNano().Append(uint64(ts.UnixNano()))
		}
	}
}

// ensureServiceName gives a resource without a service.name the one the
// semantic conventions prescribe: unknown_service:<process.executable.name>
// (or unknown_service). Backends group profiles by service name (Pyroscope
// derives the same fallback, but only for its own label).
func ensureServiceName(attrs pcommon.Map) {
	if v, ok := attrs.Get(AttrServiceName); ok && v.AsString() != "" {
		return
	}
	name := "unknown_service"
	if exe, ok := attrs.Get(AttrExecutableName); ok && exe.AsString() != "" {
		name += ":" + exe.AsString()
	}
	attrs.PutStr(AttrServiceName, name)
}

// putMap copies attributes into a pcommon.Map.
// PutAttributes stores attrs (resource or trigger attributes, as Go values:
// strings, numbers, slices of them, maps) in dst; pcommon.Map.FromRaw
// would drop typed slices such as the trigger values ([]float64).
func PutAttributes(dst pcommon.Map, attrs map[string]any) {
	dst.EnsureCapacity(len(attrs))
	for k, v := range attrs {
		putAny(dst.PutEmpty(k), v)
	}
}

// putAny stores v in dst, keeping its type where OTLP has one and falling
// back to its string form otherwise (attributes come from many sources).
func putAny(dst pcommon.Value, v any) {
	switch x := v.(type) {
	case nil:
	case string:
		dst.SetStr(x)
	case bool:
		dst.SetBool(x)
	case int:
		dst.SetInt(int64(x))
	case int32:
		dst.SetInt(int64(x))
	case int64:
		dst.SetInt(x)
	case uint32:
		dst.SetInt(int64(x))
	case uint64:
		if x > math.MaxInt64 {
			dst.SetStr(fmt.Sprint(x))
		} else {
			dst.SetInt(int64(x))
		}
	case float32:
		dst.SetDouble(float64(x))
	case float64:
		dst.SetDouble(x)
	case []byte:
		dst.SetEmptyBytes().FromRaw(x)
	case time.Time:
		dst.SetStr(x.UTC().Format(time.RFC3339Nano))
	case []string:
		putSlice(dst, x, pcommon.Value.SetStr)
	case []float64:
		putSlice(dst, x, pcommon.Value.SetDouble)
	case []int64:
		putSlice(dst, x, pcommon.Value.SetInt)
	case []any:
		putSlice(dst, x, putAny)
	case map[string]any:
		PutAttributes(dst.SetEmptyMap(), x)
	case fmt.Stringer:
		dst.SetStr(x.String())
	default:
		dst.SetStr(fmt.Sprint(x))
	}
}

// putSlice makes dst a slice of xs, each element set by put.
func putSlice[T any](dst pcommon.Value, xs []T, put func(pcommon.Value, T)) {
	s := dst.SetEmptySlice()
	for _, e := range xs {
		put(s.AppendEmpty(), e)
	}
}
