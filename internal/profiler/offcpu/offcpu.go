//go:build linux

// Package offcpu is the off-CPU event source of the profiler runtime
// (internal/profiler/stackprof): the BPF programs of bpf/offcpu on the
// sched_switch and sched_process_exit BTF tracepoints record, per stack,
// the time threads of target processes spend off the CPU. The runtime owns
// the PID filter, subscriptions, draining and the profile; this package
// owns the blocks, including those still in progress at a task's end.
package offcpu

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	offcpubpf "github.com/contprof/contprof/bpf/offcpu"
	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/cpython"
	"github.com/contprof/contprof/internal/profiler/stackprof"
	"github.com/contprof/contprof/internal/profiler/taskrun"
)

// Target is the task target this source serves; it prefixes errors.
const Target = "off_cpu"

// Options configure a Profiler; zero values take the defaults.
type Options struct {
	// MinBlock: blocks shorter than this are not counted (their stacks are
	// still taken at switch-out). Default 0: every block counts.
	MinBlock time.Duration
	// StackEntries sizes each of the two stack maps; default 8192. An entry
	// holds 127 frames (about 1 KiB of kernel memory).
	StackEntries int
	// CountEntries sizes each of the two counts maps; default 8192.
	CountEntries int
	// ThreadEntries sizes the map of threads off the CPU now (of target
	// processes only); default 16384, least recently used dropped beyond.
	ThreadEntries int
	// MaxPIDs is how many processes can be profiled at once; default 1024.
	// (The kernel filter is a bitmap over pid_max, 512 KiB at most.)
	MaxPIDs int
	// MaxStacksPerSecond bounds the stack walks per CPU per second (a
	// walk of the user and kernel stacks costs microseconds); default 1000.
	// Beyond it, switch-outs are sampled with probability budget/rate and
	// their time scaled by rate/budget, so totals and shares stay unbiased
	// (a thread switching 50,000 times a second is then sampled, one that
	// blocks 100 times a second is recorded exactly).
	MaxStacksPerSecond int
	// UnwindOptions: user stacks unwound from snapshots (the default) or
	// walked by frame pointer; EventBytes defaults to 8 MiB.
	stackprof.UnwindOptions

	// forcePIDNamespace makes the program translate PIDs through the
	// namespace helper even in the initial namespace (tests).
	forcePIDNamespace bool
}

// DefaultMaxStacksPerSecond is the default stack budget per CPU: at a few
// microseconds a walk, about 1% of a CPU at most.
const DefaultMaxStacksPerSecond = 1000

// maxMinBlock bounds MinBlock: a longer threshold would hide nearly
// everything and is most likely a unit mistake.
const maxMinBlock = time.Minute

func (o *Options) validate() error {
	if o.MinBlock < 0 || o.MinBlock > maxMinBlock {
		return fmt.Errorf("off_cpu min_block: %v is out of range [0, %v]", o.MinBlock, maxMinBlock)
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"stack_entries", &o.StackEntries, 8192},
		{"count_entries", &o.CountEntries, 8192},
		{"thread_entries", &o.ThreadEntries, 16384},
		{"max_pids", &o.MaxPIDs, 1024},
		{"max_stacks_per_second", &o.MaxStacksPerSecond, DefaultMaxStacksPerSecond},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 1 || *f.v > 1<<20 {
			return fmt.Errorf("off_cpu %s: %d is out of range [1, %d]", f.name, *f.v, 1<<20)
		}
	}
	return o.UnwindOptions.Validate(Target, 8<<20)
}

// Block is the value the profiler records per stack: time off the CPU.
type Block struct {
	// Nanoseconds off the CPU, over Blocks blocks.
	Nanoseconds uint64
	Blocks      uint64
}

// Add implements stackprof.Value.
func (b Block) Add(o Block) Block {
	return Block{Nanoseconds: b.Nanoseconds + o.Nanoseconds, Blocks: b.Blocks + o.Blocks}
}

// Weight implements stackprof.Value: profiles are in nanoseconds.
func (b Block) Weight() uint64 { return b.Nanoseconds }

// Task is one off-CPU task (the same description as on-CPU's).
type Task = taskrun.Task

// ErrClosed is returned by operations on a closed Profiler or Subscription.
var ErrClosed = stackprof.ErrClosed

// Profiler is a loaded, attached off-CPU profiler. Any number of
// Subscriptions (tasks) share it; each names one process. A block is
// counted when it ends, in full; Subscription.DrainFinal also counts the
// threads still blocked, for the time since the subscription began.
type Profiler struct {
	*stackprof.Profiler[Block]
	k *kernel
}

type kernel struct {
	stackprof.Attachment
	objs     *offcpubpf.Objects
	buf      stackprof.Buffers
	minBlock time.Duration
	uw       *unwinding // nil: frame pointers only
}

// Open loads the BPF programs and attaches them. Nothing is recorded until
// a process is added.
func Open(opts Options) (_ *Profiler, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	setup, err := stackprof.NewSetup(Target, opts.forcePIDNamespace)
	if err != nil {
		return nil, err
	}
	objs, err := offcpubpf.Load(offcpubpf.Config{
		Common:             setup.Load(opts.StackEntries, opts.CountEntries, opts.UnwindOptions),
		ThreadEntries:      uint32(opts.ThreadEntries),
		MinBlockNs:         uint64(opts.MinBlock),
		MaxStacksPerSecond: uint64(opts.MaxStacksPerSecond),
	})
	if err != nil {
		return nil, privilegeHint(err)
	}
	buf, err := stackprof.NewBuffers([2]*ebpf.Map{objs.Counts0, objs.Counts1}, [2]*ebpf.Map{objs.Stacks0, objs.Stacks1}, objs.ActiveBuf)
	if err != nil {
		_ = objs.Close()
		return nil, fmt.Errorf("off_cpu: %w", err)
	}
	k := &kernel{objs: objs, minBlock: opts.MinBlock, buf: buf}
	p := stackprof.New[Block](stackprof.Config{Name: Target, Kind: profiles.OffCPU(), MaxPIDs: opts.MaxPIDs, Trim: trimTracing}, setup, k)
	if !opts.FramePointersOnly {
		if err := k.startUnwinding(p, opts.MaxFrames); err != nil {
			_ = k.Close()
			return nil, fmt.Errorf("off_cpu: read stack snapshots: %w", err)
		}
	}
	if k.Links, err = objs.Attach(); err != nil {
		_ = k.Close()
		return nil, privilegeHint(err)
	}
	return &Profiler{Profiler: p, k: k}, nil
}

// MinBlock is the shortest block counted.
func (p *Profiler) MinBlock() time.Duration { return p.k.minBlock }

func (k *kernel) Filter() *ebpf.Map { return k.objs.TargetPids }

// PythonMaps makes the runtime walk Python processes (stackprof.PythonKernel).
func (k *kernel) PythonMaps() cpython.Maps { return k.objs.PythonMaps() }

// stack is the stacks of a block: ids into stack map buf.
func (k *kernel) stack(buf uint32, userID, kernelID int32) stackprof.Stack {
	return stackprof.Stack{
		User:       k.buf.Stack(buf, userID),
		Kernel:     k.buf.Stack(buf, kernelID),
		UserLost:   userID < 0 && userID != -int32(syscall.EFAULT),
		KernelLost: kernelID < 0,
	}
}

// Collect counts every block that ended since the last collection and
// clears what the kernel no longer needs. For a final collection, threads
// of that process still off the CPU are also counted (time since max(block
// start, subscription start)), without being cleared.
func (k *kernel) Collect(c *stackprof.Collection[Block]) error {
	if k.uw != nil {
		if err := k.uw.collect(c, k.objs.OffcpuStart, k.minBlock); err != nil {
			return fmt.Errorf("read blocked threads: %w", err)
		}
		return nil
	}
	// The program writes counts only into the active map: once the flip has
	// settled, the old one is stable and can be read and cleared.
	old, err := k.buf.Flip()
	if err != nil {
		return err
	}
	err = stackprof.Drain(k.buf.Counts[old], func(key *offcpubpf.BlockKey, v *offcpubpf.BlockValue) {
		if c.Wants(key.Pid) {
			st := k.stack(key.StackBuf, key.UserStackId, key.KernelStackId)
			st.Python = c.PythonStack(key.Pid, key.PyStackId)
			c.Add(key.Pid, st, Block{v.Ns, v.Blocks})
		}
	})
	if err != nil {
		return err
	}

	// Threads off the CPU now; their stacks must outlive this collection.
	keep := map[int32]bool{}
	nowMono, nowNs := time.Now(), monotonicNs()
	err = stackprof.Scan(k.objs.OffcpuStart, func(_ *uint32, st *offcpubpf.Start) {
		if uint32(st.StackBuf) == old {
			keep[st.UserStackId], keep[st.KernelStackId] = true, true
		}
		if c.Final == nil || st.Pid != c.Final.PID || nowNs <= st.Ts {
			return
		}
		from := nowMono.Add(-time.Duration(nowNs - st.Ts))
		if from.Before(c.Final.Since) {
			from = c.Final.Since
		}
		if d := nowMono.Sub(from); d > 0 && d >= k.minBlock {
			b := Block{Nanoseconds: uint64(d), Blocks: 1}
			if st.P16 != 0 { // recorded with probability P16/65536
				b = Block{Nanoseconds: b.Nanoseconds * 65536 / uint64(st.P16), Blocks: 65536 / uint64(st.P16)}
			}
			stack := k.stack(uint32(st.StackBuf), st.UserStackId, st.KernelStackId)
			stack.Python = c.PythonStack(st.Pid, st.PyStackId)
			c.AddFinal(stack, b)
		}
	})
	if err != nil {
		return fmt.Errorf("read blocked threads: %w", err)
	}
	// Blocks that ended since the flip, counted in the now active map,
	// may name stacks of the old buffer too. Read after the start map:
	// the program adds a count before it deletes the start entry.
	err = stackprof.Scan(k.buf.Counts[k.buf.ActiveIndex()], func(key *offcpubpf.BlockKey, _ *offcpubpf.BlockValue) {
		if key.StackBuf == old {
			keep[key.UserStackId], keep[key.KernelStackId] = true, true
		}
	})
	if err != nil {
		return fmt.Errorf("read counts: %w", err)
	}
	k.buf.ClearStacks(old, keep)
	return nil
}

// Forget drops the entries of threads of tgid still off the CPU: the
// program no longer looks at them, they would stay until the threads exit.
func (k *kernel) Forget(tgid uint32) {
	k.Attachment.Forget(tgid)
	if k.uw != nil {
		k.uw.forget(tgid)
	}
	var tids []uint32
	_ = stackprof.Scan(k.objs.OffcpuStart, func(tid *uint32, st *offcpubpf.Start) {
		if st.Pid == tgid {
			tids = append(tids, *tid)
		}
	})
	for _, tid := range tids {
		_ = k.objs.OffcpuStart.Delete(tid)
	}
}

func (k *kernel) Close() error {
	return errors.Join(k.Attachment.Close(), k.buf.Close(), k.objs.Close())
}

// Stats are profiler-wide totals since Open.
type Stats struct {
	SwitchOuts       uint64 // switch-outs of target threads recorded (stacks taken)
	Blocks           uint64 // blocks counted
	ShortBlocks      uint64 // blocks shorter than MinBlock, not counted
	UserStacksLost   uint64 // user stack not recorded (map full or collision)
	KernelStacksLost uint64
	BlocksLost       uint64 // counts map full
	// Unsampled switch-outs were skipped by the stack budget (their time
	// is represented by the sampled ones).
	Unsampled uint64
	// EventsLost are snapshots or blocks dropped because the ring buffer
	// was full (unwinding only).
	EventsLost uint64
}

// Stats reads the profiler-wide counters; a growing UserStacksLost or
// BlocksLost means the maps are too small.
func (p *Profiler) Stats() (Stats, error) {
	v, err := p.ReadStats(p.k.objs.Stats, offcpubpf.NumStats)
	if err != nil {
		return Stats{}, err
	}
	// Skipped switch-outs are counted in the per-CPU budget state.
	var rates []offcpubpf.Rate
	if err := p.k.objs.Rates.Lookup(uint32(0), &rates); err != nil {
		return Stats{}, fmt.Errorf("read off-CPU rates: %w", err)
	}
	var unsampled uint64
	for _, r := range rates {
		unsampled += r.Unsampled
	}
	return Stats{
		SwitchOuts:       v[offcpubpf.StatSwitchOut],
		Blocks:           v[offcpubpf.StatBlocks],
		ShortBlocks:      v[offcpubpf.StatShortBlocks],
		UserStacksLost:   v[offcpubpf.StatUserStackLost],
		KernelStacksLost: v[offcpubpf.StatKernelStackLost],
		BlocksLost:       v[offcpubpf.StatCountLost],
		Unsampled:        unsampled,
		EventsLost:       v[offcpubpf.StatEventLost],
	}, nil
}

// Manager loads the profiler when the first process is added and unloads
// it when the last subscription closes, so that nothing runs on the
// scheduler's hot path while no off-CPU task does. It is safe for
// concurrent use.
type Manager = stackprof.Manager[Block]

// NewManager returns a Manager; opts are checked now. Its StartTask
// starts recording a task's process; the task's final profile also holds
// the threads still blocked at the end, for the time they have been
// blocked during the task (see DrainFinal).
func NewManager(opts Options) (*Manager, error) {
	return stackprof.NewManagerFor[Block](Target, opts, (*Options).validate, Open)
}

// trimTracing drops the leading kernel frames of the tracing machinery that
// ran the BPF program (the program itself, the tracepoint's trampolines), so
// that the kernel stack starts in the scheduler as in a perf profile.
func trimTracing(frames []profiles.Frame) []profiles.Frame {
	i := 0
	for i < len(frames) && frames[i].Type == profiles.FrameKernel && isTracingFrame(frames[i].Function) {
		i++
	}
	return frames[i:]
}

func isTracingFrame(fn string) bool {
	for _, p := range []string{"bpf_", "__bpf_", "___bpf_", "__traceiter_", "trace_", "perf_"} {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}

// monotonicNs is CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
func monotonicNs() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

func privilegeHint(err error) error { return stackprof.PrivilegeHint(err, "off-CPU profiling") }
