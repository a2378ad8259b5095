//go:build linux

package offcpu

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/contprof/contprof/bpf/load"

	"github.com/contprof/contprof/internal/profiler/cpython"
)

// BlockKey is the key of the counts maps: one (process, user stack, kernel
// stack) triple, with the stack map (StackBuf, 0 or 1) the ids belong to. A
// negative stack id means the stack was not recorded.
type BlockKey = offcpuBlockKey

// BlockValue is the value of the counts maps: total nanoseconds off the CPU
// and the number of blocks.
type BlockValue = offcpuBlockValue

// Start is the value of the per-thread start map: a thread of a target
// process that is off the CPU now.
type Start = offcpuStart

// Rate is the per-CPU value of the rates map (stack budget state, and the
// switch-outs it skipped).
type Rate = offcpuRate

// Indexes of the per-CPU stats array (enum stat_index in offcpu.c).
const (
	StatSwitchOut = iota
	StatBlocks
	StatShortBlocks
	StatUserStackLost
	StatKernelStackLost
	StatCountLost
	StatUnsampled
	StatEventLost
	NumStats
)

// Config sizes the maps, sets the minimum block time and the PID namespace
// the filter compares in.
type Config struct {
	load.Common
	// ThreadEntries is the capacity of the per-thread start map (threads of
	// target processes off the CPU at once; LRU beyond that).
	ThreadEntries uint32
	// MinBlockNs: blocks shorter than this are not counted.
	MinBlockNs uint64
	// MaxStacksPerSecond is the stack budget per CPU beyond which
	// switch-outs are sampled (and their time scaled); 0: no limit.
	MaxStacksPerSecond uint64
}

// Objects are the loaded programs and maps.
type Objects struct {
	offcpuObjects
}

// Load loads the programs and their maps into the kernel; nothing runs until
// Attach.
func Load(cfg Config) (*Objects, error) {
	return load.New[Objects](loadOffcpu, load.Settings{
		Common: cfg.Common,
		// blocked_tids has a bit per thread id, as target_pids per PID.
		Entries: map[string]uint32{offcpuMapOffcpuStart: cfg.ThreadEntries, offcpuMapBlockedTids: cfg.FilterWords},
		Vars: map[string]any{
			offcpuVarMinBlockNs:      cfg.MinBlockNs,
			offcpuVarMaxStacksPerSec: cfg.MaxStacksPerSecond,
		},
	}, "off-CPU profiler")
}

// Attach attaches the programs to the sched_switch and sched_process_exit
// BTF tracepoints; closing the links detaches them.
func (o *Objects) Attach() ([]link.Link, error) {
	sw, err := link.AttachTracing(link.TracingOptions{Program: o.OffcpuSwitch, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		return nil, fmt.Errorf("attach off-CPU program to tp_btf/sched_switch: %w", err)
	}
	ex, err := link.AttachTracing(link.TracingOptions{Program: o.OffcpuExit, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		_ = sw.Close()
		return nil, fmt.Errorf("attach off-CPU program to tp_btf/sched_process_exit: %w", err)
	}
	return []link.Link{sw, ex}, nil
}

// SwitchProgram is the sched_switch program (for its run-time statistics).
func (o *Objects) SwitchProgram() *ebpf.Program { return o.OffcpuSwitch }

// PythonMaps are the maps of the CPython frame walker (cpython.h).
func (o *Objects) PythonMaps() cpython.Maps {
	return cpython.Maps{Procs: o.PyProcs, Stacks: o.PyStacks, Stats: o.PyStats}
}
