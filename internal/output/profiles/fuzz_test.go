package profiles

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// fuzzProfile builds a profile from arbitrary bytes: the executors hand
// over whatever a process's stacks, symbols and attributes were, so the
// conversions must cope with any shape (empty names, shared and nil
// mappings, huge addresses, zero and large values, odd attribute types).
func fuzzProfile(data []byte) *Profile {
	r := bytes.NewReader(data)
	u8 := func() int { b, _ := r.ReadByte(); return int(b) }
	u64 := func() uint64 { var v uint64; _ = binary.Read(r, binary.LittleEndian, &v); return v }
	str := func() string {
		n := u8() % 24
		b := make([]byte, n)
		_, _ = r.Read(b)
		return string(b)
	}
	kinds := []Kind{OnCPU(99), OffCPU(), OnCPU(0), {SampleType: str(), SampleUnit: "count", PeriodType: str(), PeriodUnit: str(), Period: int64(u64() % 1e9)}}
	p := &Profile{Kind: kinds[u8()%len(kinds)], Start: time.Unix(int64(u64()%4e9), 0)}
	p.End = p.Start.Add(time.Duration(u8()) * time.Second)
	p.Resource = map[string]any{"process.pid": int64(u8()), str(): str(), "x": []any{str(), int64(1), 2.5, true}}
	p.Attributes = map[string]any{str(): u64(), "m": map[string]any{"k": str()}}
	var maps []*Mapping
	for range u8() % 4 {
		maps = append(maps, &Mapping{Start: u64(), Limit: u64(), Offset: u64(), File: str(), BuildID: str()})
	}
	maps = append(maps, nil)
	types := []FrameType{FrameKernel, FrameNative, FrameGo, FrameJVM, FrameV8JS, ""}
	for range u8() % 16 {
		var s Sample
		for range u8() % 12 {
			s.Frames = append(s.Frames, Frame{
				Function: str(), SystemName: str(), File: str(), Line: int64(u8()),
				Address: u64(), Mapping: maps[u8()%len(maps)], Type: types[u8()%len(types)],
			})
		}
		s.Value = int64(u64() % (1 << 40))
		p.Samples = append(p.Samples, s)
	}
	return p
}

func FuzzConvert(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{3, 1, 0, 7, 255, 9, 2, 4}, 64))
	f.Add(bytes.Repeat([]byte{0xff}, 512))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := fuzzProfile(data)
		pp := p.Pprof()
		if err := pp.CheckValid(); err != nil {
			t.Fatalf("pprof conversion is invalid: %v", err)
		}
		var buf bytes.Buffer
		if err := pp.Write(&buf); err != nil {
			t.Fatalf("pprof does not encode: %v", err)
		}
		back, err := profile.Parse(&buf)
		if err != nil {
			t.Fatalf("pprof does not parse back: %v", err)
		}
		var total int64
		for _, s := range back.Sample {
			total += s.Value[0]
		}
		if total != p.Total() {
			t.Fatalf("pprof total %d, profile total %d", total, p.Total())
		}
		pd := ToPprofile("fuzz", p, p)
		if n := pd.ResourceProfiles().Len(); n == 0 {
			t.Fatal("ToPprofile produced no resource profiles")
		}
	})
}
