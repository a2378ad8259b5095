package symbolize

import (
	"testing"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// BenchmarkStack symbolizes a 32-frame stack of a running Go process with
// warm caches (the steady state of a task's drains).
func BenchmarkStack(b *testing.B) {
	proc := workload.Start(b, workload.BuildGo(b, "hotgo"))
	s := New(Options{})
	stack := make([]uint64, 32)
	for i := range stack {
		stack[i] = proc.Addrs["hotA"] + uint64(i%16)*4
	}
	if fr := s.Stack(proc.PID(), stack, nil); fr[0].Function != "main.hotA" {
		b.Fatalf("got %+v", fr[0])
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Stack(proc.PID(), stack, nil)
	}
}

// BenchmarkOpenGoBinary is the cold cost of loading a Go binary's tables.
func BenchmarkOpenGoBinary(b *testing.B) {
	bin := workload.BuildGo(b, "hotgo")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OpenFile(bin); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStackInlined symbolizes the goinline workload's stack, whose
// return address is in inlined code, plus every pc of its hot function
// (three levels of inlining at some) as leaves: the cost of expanding
// inlined frames.
func BenchmarkStackInlined(b *testing.B) {
	bin := workload.BuildGo(b, "goinline")
	run := startGoinline(b, bin)
	s := New(Options{})
	b.ReportAllocs()
	frames := 0
	for b.Loop() {
		for _, pc := range run.pcs {
			frames += len(s.Stack(run.proc.Process.Pid, append([]uint64{pc}, run.stack...), nil))
		}
	}
	b.ReportMetric(float64(frames)/float64(b.N), "frames/op")
}
