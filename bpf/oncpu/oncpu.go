//go:build linux

package oncpu

import (
	"github.com/cilium/ebpf"

	"github.com/contprof/contprof/bpf/load"
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

// Config sizes the maps and sets the PID namespace the filter compares in.
type Config struct {
	load.Common
	// Unwind makes the program send user stack snapshots (see ustack.h)
	// to the Events ring buffer instead of counting frame-pointer stacks.
	Unwind bool
	// EventBytes sizes the ring buffer (a power of two, at least a page).
	EventBytes uint32
}

// Objects are the loaded program and maps.
type Objects struct {
	oncpuObjects
}

// Load loads the sampler program and its maps into the kernel.
func Load(cfg Config) (*Objects, error) {
	spec, err := loadOncpu()
	if err != nil {
		return nil, err
	}
	var cpus uint32
	if n, err := ebpf.PossibleCPU(); err == nil {
		cpus = uint32(n)
	}
	var unwind uint32
	if cfg.Unwind {
		// Counted in user space: the stack and counts maps are unused.
		unwind, cfg.StackEntries, cfg.CountEntries = 1, 1, 1
	}
	var objs Objects
	err = load.Load(spec, load.Settings{
		Common:  cfg.Common,
		Entries: map[string]uint32{oncpuMapEvents: cfg.EventBytes, oncpuMapUstackScratch: cpus},
		Vars:    map[string]any{oncpuVarUnwindUser: unwind},
	}, &objs.oncpuObjects, "on-CPU sampler")
	if err != nil {
		return nil, err
	}
	return &objs, nil
}

// Program is the perf_event program to attach to CPU-clock events.
func (o *Objects) Program() *ebpf.Program { return o.OncpuSample }
