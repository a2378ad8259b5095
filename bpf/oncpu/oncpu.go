//go:build linux

package oncpu

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// SampleKey is the key of the counts maps: one (process, user stack, kernel
// stack) triple. A negative stack id means the stack was not recorded;
// KernelStackID == -EFAULT means the sample was taken in user mode.
type SampleKey = oncpuSampleKey

// MaxStackDepth is the number of frames a stack map value holds.
const MaxStackDepth = 127

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
	// StackEntries is the capacity of each of the two stack maps.
	StackEntries uint32
	// CountEntries is the capacity of each of the two counts maps.
	CountEntries uint32
	// MaxPIDs is the capacity of the PID filter.
	MaxPIDs uint32
	// PIDNamespaceDev and PIDNamespaceIno identify the loader's PID
	// namespace; zero means the initial namespace (the fast path).
	PIDNamespaceDev uint64
	PIDNamespaceIno uint64
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
	resize := func(name string, n uint32) {
		if n > 0 {
			spec.Maps[name].MaxEntries = n
		}
	}
	resize(oncpuMapStacks0, cfg.StackEntries)
	resize(oncpuMapStacks1, cfg.StackEntries)
	resize(oncpuMapCounts0, cfg.CountEntries)
	resize(oncpuMapCounts1, cfg.CountEntries)
	resize(oncpuMapTargetPids, cfg.MaxPIDs)
	resize(oncpuMapEvents, cfg.EventBytes)
	if n, err := ebpf.PossibleCPU(); err == nil {
		resize(oncpuMapUstackScratch, uint32(n))
	}
	if cfg.Unwind {
		if err := spec.Variables[oncpuVarUnwindUser].Set(uint32(1)); err != nil {
			return nil, fmt.Errorf("set unwind_user: %w", err)
		}
	}
	if err := spec.Variables[oncpuVarPidnsDev].Set(cfg.PIDNamespaceDev); err != nil {
		return nil, fmt.Errorf("set pidns_dev: %w", err)
	}
	if err := spec.Variables[oncpuVarPidnsIno].Set(cfg.PIDNamespaceIno); err != nil {
		return nil, fmt.Errorf("set pidns_ino: %w", err)
	}

	var objs Objects
	if err := spec.LoadAndAssign(&objs.oncpuObjects, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load on-CPU sampler: verifier rejected the program: %+v", ve)
		}
		return nil, fmt.Errorf("load on-CPU sampler: %w", err)
	}
	return &objs, nil
}

// Program is the perf_event program to attach to CPU-clock events.
func (o *Objects) Program() *ebpf.Program { return o.OncpuSample }

// Buffer returns the counts and stacks maps of buffer i (0 or 1).
func (o *Objects) Buffer(i uint32) (counts, stacks *ebpf.Map) {
	if i == 0 {
		return o.Counts0, o.Stacks0
	}
	return o.Counts1, o.Stacks1
}

// SetActive makes the program write to buffer i from now on.
func (o *Objects) SetActive(i uint32) error {
	return o.ActiveBuf.Set(i)
}

// Close releases the program and maps.
func (o *Objects) Close() error {
	return o.oncpuObjects.Close()
}
