//go:build linux

package offcpu

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
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

// MaxStackDepth is the number of frames a stack map value holds.
const MaxStackDepth = 127

// Indexes of the per-CPU stats array (enum stat_index in offcpu.c).
const (
	StatSwitchOut = iota
	StatBlocks
	StatShortBlocks
	StatUserStackLost
	StatKernelStackLost
	StatCountLost
	StatUnsampled
	NumStats
)

// Config sizes the maps, sets the minimum block time and the PID namespace
// the filter compares in.
type Config struct {
	// StackEntries is the capacity of each of the two stack maps.
	StackEntries uint32
	// CountEntries is the capacity of each of the two counts maps.
	CountEntries uint32
	// ThreadEntries is the capacity of the per-thread start map (threads of
	// target processes off the CPU at once; LRU beyond that).
	ThreadEntries uint32
	// PIDMax sizes the PID filter bitmap: PIDs below it can be targets
	// (/proc/sys/kernel/pid_max).
	PIDMax uint32
	// MinBlockNs: blocks shorter than this are not counted.
	MinBlockNs uint64
	// MaxStacksPerSecond is the stack budget per CPU beyond which
	// switch-outs are sampled (and their time scaled); 0: no limit.
	MaxStacksPerSecond uint64
	// PIDNamespaceDev and PIDNamespaceIno identify the loader's PID
	// namespace; zero means the initial namespace (the fast path).
	PIDNamespaceDev uint64
	PIDNamespaceIno uint64
}

// Objects are the loaded programs and maps.
type Objects struct {
	offcpuObjects
}

// Load loads the programs and their maps into the kernel; nothing runs until
// Attach.
func Load(cfg Config) (*Objects, error) {
	spec, err := loadOffcpu()
	if err != nil {
		return nil, err
	}
	resize := func(name string, n uint32) {
		if n > 0 {
			spec.Maps[name].MaxEntries = n
		}
	}
	resize(offcpuMapStacks0, cfg.StackEntries)
	resize(offcpuMapStacks1, cfg.StackEntries)
	resize(offcpuMapCounts0, cfg.CountEntries)
	resize(offcpuMapCounts1, cfg.CountEntries)
	resize(offcpuMapOffcpuStart, cfg.ThreadEntries)
	resize(offcpuMapTargetPids, (cfg.PIDMax+63)/64)
	for name, v := range map[string]uint64{
		offcpuVarPidnsDev:        cfg.PIDNamespaceDev,
		offcpuVarPidnsIno:        cfg.PIDNamespaceIno,
		offcpuVarMinBlockNs:      cfg.MinBlockNs,
		offcpuVarMaxStacksPerSec: cfg.MaxStacksPerSecond,
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}

	var objs Objects
	if err := spec.LoadAndAssign(&objs.offcpuObjects, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load off-CPU profiler: verifier rejected the program: %+v", ve)
		}
		return nil, fmt.Errorf("load off-CPU profiler: %w", err)
	}
	return &objs, nil
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

// Buffer returns the counts and stacks maps of buffer i (0 or 1).
func (o *Objects) Buffer(i uint32) (counts, stacks *ebpf.Map) {
	if i == 0 {
		return o.Counts0, o.Stacks0
	}
	return o.Counts1, o.Stacks1
}

// SetActive makes the program record into buffer i from now on.
func (o *Objects) SetActive(i uint32) error {
	return o.ActiveBuf.Set(i)
}

// SetTarget adds (on) or removes tgid from the PID filter. Only user space
// writes the filter; callers serialize.
func (o *Objects) SetTarget(tgid uint32, on bool) error {
	word, bit := tgid/64, uint64(1)<<(tgid%64)
	var bits uint64
	if err := o.TargetPids.Lookup(word, &bits); err != nil {
		return err
	}
	if on {
		bits |= bit
	} else {
		bits &^= bit
	}
	return o.TargetPids.Update(word, bits, ebpf.UpdateExist)
}

// IsTarget reports whether tgid is in the PID filter.
func (o *Objects) IsTarget(tgid uint32) (bool, error) {
	var bits uint64
	if err := o.TargetPids.Lookup(tgid/64, &bits); err != nil {
		return false, err
	}
	return bits&(uint64(1)<<(tgid%64)) != 0, nil
}

// Close releases the programs and maps.
func (o *Objects) Close() error {
	return o.offcpuObjects.Close()
}
