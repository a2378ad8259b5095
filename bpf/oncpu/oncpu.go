//go:build linux

package oncpu

import (
	"github.com/cilium/ebpf"

	"github.com/contprof/contprof/bpf/load"

	"github.com/contprof/contprof/internal/profiler/cpython"
)

// SampleKey is the key of the counts maps: one (process, user stack, kernel
// stack) triple. A negative stack id means the stack was not recorded;
// KernelStackID == -EFAULT means the sample was taken in user mode.
type SampleKey = oncpuSampleKey

// Indexes of the per-CPU stats array (enum stat_index in oncpu.c).
const (
	StatSamples = iota
	StatUserStackLost
	StatKernelStackLost
	StatCountLost
	StatEventLost
	NumStats
)

// Config sizes the maps and sets the PID namespace the filter compares in
// and how user stacks are taken.
type Config = load.Common

// Objects are the loaded program and maps.
type Objects struct {
	oncpuObjects
}

// Load loads the sampler program and its maps into the kernel.
func Load(cfg Config) (*Objects, error) {
	return load.New[Objects](loadOncpu, load.Settings{Common: cfg}, "on-CPU sampler")
}

// Program is the perf_event program to attach to CPU-clock events.
func (o *Objects) Program() *ebpf.Program { return o.OncpuSample }

// PythonMaps are the maps of the CPython frame walker (cpython.h).
func (o *Objects) PythonMaps() cpython.Maps {
	return cpython.Maps{Procs: o.PyProcs, Stacks: o.PyStacks, Stats: o.PyStats}
}
