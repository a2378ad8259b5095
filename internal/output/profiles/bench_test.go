package profiles

import (
	"fmt"
	"testing"
	"time"
)

// bigProfile has n distinct stacks of depth frames drawn from 500 functions,
// about what a busy service yields in one 10 s interval.
func bigProfile(n, depth int) *Profile {
	funcs := make([]Frame, 500)
	for i := range funcs {
		funcs[i] = Frame{Function: fmt.Sprintf("pkg.fn%d", i), File: "/src/pkg/file.go", Line: int64(i), Address: 0x400000 + uint64(i)*64, Mapping: exeMapping, Type: FrameGo}
	}
	p := &Profile{Kind: OnCPU(99), Start: time.Unix(1e9, 0), End: time.Unix(1e9+10, 0),
		Resource: map[string]any{"service.name": "x"}, Attributes: TaskAttributes(testTask())}
	for i := 0; i < n; i++ {
		frames := make([]Frame, depth)
		for j := range frames {
			frames[j] = funcs[(i*7+j*13)%len(funcs)]
		}
		p.Samples = append(p.Samples, Sample{Frames: frames, Value: int64(i%10 + 1)})
	}
	return p
}

func BenchmarkToPprofile(b *testing.B) {
	p := bigProfile(2000, 30)
	b.ReportAllocs()
	for b.Loop() {
		ToPprofile("s", p)
	}
}

func BenchmarkPprof(b *testing.B) {
	p := bigProfile(2000, 30)
	b.ReportAllocs()
	for b.Loop() {
		p.Pprof()
	}
}
