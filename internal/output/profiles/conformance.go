package profiles

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/pdata/pprofile"
)

// Profile type strings (sample type:unit:period type:unit, the period part
// empty without a period) that a backend recognises, with the profile name
// Pyroscope gives each: its OTLP ingest derives the name from this string
// and guesses process_cpu for anything else.
var ProfileTypes = map[string]string{
	"samples:count:cpu:nanoseconds": "process_cpu",
	"off_cpu:nanoseconds::":         "off_cpu",
}

// Conformance checks pd against the rules of Pyroscope's OTLP profiles
// ingest (its handler rejects a request, or a profile, that breaks them)
// and the conventions contprof promises:
//   - the dictionary is present and each of its tables starts with its zero
//     entry; every index (string, attribute, mapping, location, function,
//     stack) is in range;
//   - every profile has a sample type, and its type string is one of
//     ProfileTypes; a period type when and only when there is a period;
//   - every sample has exactly one value, not negative, and as many
//     timestamps as values, within the profile's interval;
//   - every resource has a non-empty service.name; every function has a
//     non-empty name and every mapping a file name;
//   - a profile has a time and a duration.
//
// It returns every violation found, naming where.
func Conformance(pd pprofile.Profiles) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	d := pd.Dictionary()
	strs := d.StringTable()
	if strs.Len() == 0 || strs.At(0) != "" {
		return []error{errors.New("dictionary: string table missing or not starting with \"\"")}
	}
	str := func(where string, i int32) string {
		if i < 0 || int(i) >= strs.Len() {
			fail("%s: string index %d out of range [0,%d)", where, i, strs.Len())
			return ""
		}
		return strs.At(int(i))
	}
	inRange := func(where, table string, i int32, n int) bool {
		if i < 0 || int(i) >= n {
			fail("%s: %s index %d out of range [0,%d)", where, table, i, n)
			return false
		}
		return true
	}
	attrs := func(where string, idx []int32) {
		for _, i := range idx {
			if inRange(where, "attribute", i, d.AttributeTable().Len()) {
				if str(where+" attribute key", d.AttributeTable().At(int(i)).KeyStrindex()) == "" {
					fail("%s: attribute %d has an empty key", where, i)
				}
			}
		}
	}
	for name, n := range map[string]int{"mapping": d.MappingTable().Len(), "location": d.LocationTable().Len(),
		"function": d.FunctionTable().Len(), "stack": d.StackTable().Len(), "attribute": d.AttributeTable().Len()} {
		if n == 0 {
			fail("dictionary: %s table is empty (index 0 must be the zero value)", name)
		}
	}
	for i := 1; i < d.MappingTable().Len(); i++ {
		m := d.MappingTable().At(i)
		where := fmt.Sprintf("mapping %d", i)
		if str(where+" filename", m.FilenameStrindex()) == "" {
			fail("%s: empty file name", where)
		}
		attrs(where, m.AttributeIndices().AsRaw())
	}
	for i := 1; i < d.FunctionTable().Len(); i++ {
		f := d.FunctionTable().At(i)
		where := fmt.Sprintf("function %d", i)
		if str(where+" name", f.NameStrindex()) == "" {
			fail("%s: empty name", where)
		}
		str(where+" system name", f.SystemNameStrindex())
		str(where+" filename", f.FilenameStrindex())
	}
	for i := 1; i < d.LocationTable().Len(); i++ {
		l := d.LocationTable().At(i)
		where := fmt.Sprintf("location %d", i)
		inRange(where, "mapping", l.MappingIndex(), d.MappingTable().Len())
		for j := 0; j < l.Lines().Len(); j++ {
			inRange(where, "function", l.Lines().At(j).FunctionIndex(), d.FunctionTable().Len())
		}
		attrs(where, l.AttributeIndices().AsRaw())
	}
	for i := 0; i < d.StackTable().Len(); i++ {
		for _, li := range d.StackTable().At(i).LocationIndices().AsRaw() {
			inRange(fmt.Sprintf("stack %d", i), "location", li, d.LocationTable().Len())
		}
	}

	for i := 0; i < pd.ResourceProfiles().Len(); i++ {
		rp := pd.ResourceProfiles().At(i)
		if v, ok := rp.Resource().Attributes().Get(AttrServiceName); !ok || v.AsString() == "" {
			fail("resource %d: no service.name", i)
		}
		for j := 0; j < rp.ScopeProfiles().Len(); j++ {
			ps := rp.ScopeProfiles().At(j).Profiles()
			for k := 0; k < ps.Len(); k++ {
				checkProfile(fmt.Sprintf("resource %d scope %d profile %d", i, j, k), ps.At(k), d, str, inRange, attrs, fail)
			}
		}
	}
	return errs
}

func checkProfile(where string, p pprofile.Profile, d pprofile.ProfilesDictionary,
	str func(string, int32) string, inRange func(string, string, int32, int) bool,
	attrs func(string, []int32), fail func(string, ...any)) {
	typ, unit := str(where+" sample type", p.SampleType().TypeStrindex()), str(where+" sample unit", p.SampleType().UnitStrindex())
	if typ == "" || unit == "" {
		fail("%s: sample type %q/%q has an empty part", where, typ, unit)
	}
	var ptyp, punit string
	if p.Period() != 0 {
		ptyp, punit = str(where+" period type", p.PeriodType().TypeStrindex()), str(where+" period unit", p.PeriodType().UnitStrindex())
		if ptyp == "" || punit == "" {
			fail("%s: period %d without a period type", where, p.Period())
		}
	}
	if pt := typ + ":" + unit + ":" + ptyp + ":" + punit; ProfileTypes[pt] == "" {
		fail("%s: profile type %q is not one a backend recognises (%v)", where, pt, ProfileTypes)
	}
	if p.Time() == 0 || p.DurationNano() == 0 {
		fail("%s: time %d, duration %d: both must be set", where, p.Time(), p.DurationNano())
	}
	start, end := uint64(p.Time()), uint64(p.Time())+p.DurationNano()
	attrs(where, p.AttributeIndices().AsRaw())
	for s := 0; s < p.Samples().Len(); s++ {
		smp := p.Samples().At(s)
		sw := fmt.Sprintf("%s sample %d", where, s)
		inRange(sw, "stack", smp.StackIndex(), d.StackTable().Len())
		attrs(sw, smp.AttributeIndices().AsRaw())
		if smp.LinkIndex() != 0 {
			inRange(sw, "link", smp.LinkIndex(), d.LinkTable().Len())
		}
		if smp.Values().Len() != 1 {
			fail("%s: %d values, want 1 (one sample type)", sw, smp.Values().Len())
		} else if smp.Values().At(0) < 0 {
			fail("%s: negative value %d", sw, smp.Values().At(0))
		}
		ts := smp.TimestampsUnixNano()
		if ts.Len() != smp.Values().Len() {
			fail("%s: %d timestamps for %d values", sw, ts.Len(), smp.Values().Len())
		}
		for t := 0; t < ts.Len(); t++ {
			if ts.At(t) < start || ts.At(t) >= end {
				fail("%s: timestamp %d outside the profile's interval [%d,%d)", sw, ts.At(t), start, end)
			}
		}
	}
}
