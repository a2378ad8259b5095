//go:build linux

// Package oncpu is the on-CPU event source of the profiler runtime
// (internal/profiler/stackprof): one CPU-clock perf event per CPU running
// the BPF program of bpf/oncpu, which counts the stacks of target
// processes. The runtime owns the PID filter, subscriptions, draining and
// the profile; this package owns the sampling itself.
package oncpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	oncpubpf "github.com/contprof/contprof/bpf/oncpu"
	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/cpython"
	"github.com/contprof/contprof/internal/profiler/stackprof"
	"github.com/contprof/contprof/internal/profiler/taskrun"
)

// Target is the task target this source serves; it prefixes errors.
const Target = "on_cpu"

// Options configure a Sampler; zero values take the defaults.
type Options struct {
	// Frequency is the sampling frequency per CPU in Hz; default 99.
	Frequency int
	// StackEntries sizes each of the two stack maps; default 8192. An
	// entry holds 127 frames (about 1 KiB of kernel memory), so the default
	// costs about 17 MiB while the sampler is loaded.
	StackEntries int
	// CountEntries sizes each of the two counts maps; default 8192.
	CountEntries int
	// MaxPIDs is how many processes can be profiled at once; default 1024.
	MaxPIDs int
	// UnwindOptions: user stacks unwound from snapshots (the default) or
	// walked by frame pointer; EventBytes defaults to 4 MiB.
	stackprof.UnwindOptions

	// forcePIDNamespace makes the program translate PIDs through the
	// namespace helper even in the initial namespace (tests).
	forcePIDNamespace bool
}

// DefaultFrequency is the default sampling frequency, off the common 100 Hz
// so that sampling does not run in lockstep with periodic work.
const DefaultFrequency = 99

const maxFrequency = 10000

func (o *Options) validate() error {
	if o.Frequency == 0 {
		o.Frequency = DefaultFrequency
	}
	if o.Frequency < 1 || o.Frequency > maxFrequency {
		return fmt.Errorf("on_cpu frequency: %d Hz is out of range [1, %d]", o.Frequency, maxFrequency)
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{{"stack_entries", &o.StackEntries, 8192}, {"count_entries", &o.CountEntries, 8192}, {"max_pids", &o.MaxPIDs, 1024}} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 1 || *f.v > 1<<20 {
			return fmt.Errorf("on_cpu %s: %d is out of range [1, %d]", f.name, *f.v, 1<<20)
		}
	}
	return o.UnwindOptions.Validate(Target, 4<<20)
}

// Count is the value the sampler counts per stack: samples.
type Count uint64

// Add implements stackprof.Value.
func (c Count) Add(o Count) Count { return c + o }

// Weight implements stackprof.Value.
func (c Count) Weight() uint64 { return uint64(c) }

// Task is one on-CPU task; TaskRun a started one.
type (
	Task    = taskrun.Task
	TaskRun = taskrun.Run
)

// ErrClosed is returned by operations on a closed Sampler or Subscription.
var ErrClosed = stackprof.ErrClosed

// Sampler is a loaded, attached on-CPU sampler. Any number of
// Subscriptions (tasks) share it; each names one process.
type Sampler struct {
	*stackprof.Profiler[Count]
	freq int
	k    *kernel
}

// kernel is the sampler's side in the kernel.
type kernel struct {
	stackprof.Attachment
	objs   *oncpubpf.Objects
	events []int // perf event fds
	buf    stackprof.Buffers
	uw     *unwinding // nil: frame pointers only
}

// Open loads the BPF program and attaches it to a CPU-clock perf event on
// every online CPU. Nothing is sampled until a process is added.
func Open(opts Options) (_ *Sampler, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	setup, err := stackprof.NewSetup(Target, opts.forcePIDNamespace)
	if err != nil {
		return nil, err
	}
	objs, err := oncpubpf.Load(setup.Load(opts.StackEntries, opts.CountEntries, opts.UnwindOptions))
	if err != nil {
		return nil, privilegeHint(err)
	}
	buf, err := stackprof.NewBuffers([2]*ebpf.Map{objs.Counts0, objs.Counts1}, [2]*ebpf.Map{objs.Stacks0, objs.Stacks1}, objs.ActiveBuf)
	if err != nil {
		_ = objs.Close()
		return nil, fmt.Errorf("on_cpu: %w", err)
	}
	k := &kernel{objs: objs, buf: buf}
	defer func() {
		if err != nil {
			_ = k.Close()
		}
	}()
	p := stackprof.New[Count](stackprof.Config{Name: Target, Kind: profiles.OnCPU(opts.Frequency), MaxPIDs: opts.MaxPIDs}, setup, k)
	if !opts.FramePointersOnly {
		if err := k.startUnwinding(p, opts.MaxFrames); err != nil {
			return nil, fmt.Errorf("on_cpu: read stack snapshots: %w", err)
		}
	}
	if err := k.attach(opts.Frequency); err != nil {
		return nil, err
	}
	return &Sampler{Profiler: p, freq: opts.Frequency, k: k}, nil
}

// attach opens a CPU-clock perf event on every online CPU and attaches the
// program to it.
func (k *kernel) attach(freq int) error {
	cpus, err := onlineCPUs()
	if err != nil {
		return err
	}
	for _, cpu := range cpus {
		attr := unix.PerfEventAttr{
			Type:   unix.PERF_TYPE_SOFTWARE,
			Config: unix.PERF_COUNT_SW_CPU_CLOCK,
			Size:   uint32(binary.Size(unix.PerfEventAttr{})),
			Sample: uint64(freq),
			Bits:   unix.PerfBitFreq,
		}
		fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
		if err != nil {
			return privilegeHint(fmt.Errorf("perf_event_open(cpu-clock, cpu %d): %w", cpu, err))
		}
		k.events = append(k.events, fd)
		prog := k.objs.Program()
		l, err := link.AttachRawLink(link.RawLinkOptions{Target: fd, Program: prog, Attach: ebpf.AttachPerfEvent})
		if err != nil {
			if !errors.Is(err, ebpf.ErrNotSupported) {
				return fmt.Errorf("attach on-CPU program to cpu %d: %w", cpu, err)
			}
			// Kernels before 5.15 have no BPF link for perf events.
			if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_BPF, prog.FD()); err != nil {
				return fmt.Errorf("attach on-CPU program to cpu %d: %w", cpu, err)
			}
			if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
				return fmt.Errorf("enable perf event on cpu %d: %w", cpu, err)
			}
			continue
		}
		k.Links = append(k.Links, l)
	}
	return nil
}

func (k *kernel) Filter() *ebpf.Map { return k.objs.TargetPids }

// PythonMaps makes the runtime walk Python processes (stackprof.PythonKernel).
func (k *kernel) PythonMaps() cpython.Maps { return k.objs.PythonMaps() }

// Collect counts every sample since the previous collection: unwound in
// user space from stack snapshots, or with FramePointersOnly the stack ids
// bpf_get_stackid recorded.
func (k *kernel) Collect(c *stackprof.Collection[Count]) error {
	if k.uw != nil {
		k.uw.Sync()
		k.uw.pending.Flush(c)
		return nil
	}
	old, err := k.buf.Flip()
	if err != nil {
		return err
	}
	err = stackprof.Drain(k.buf.Counts[old], func(key *oncpubpf.SampleKey, n *uint64) {
		if !c.Wants(key.Pid) {
			return
		}
		c.Add(key.Pid, stackprof.Stack{
			User:       k.buf.Stack(old, key.UserStackId),
			Kernel:     k.buf.Stack(old, key.KernelStackId),
			UserLost:   key.UserStackId < 0,
			KernelLost: key.KernelStackId < 0 && key.KernelStackId != -int32(syscall.EFAULT),
			Python:     c.PythonStack(key.Pid, key.PyStackId),
		}, Count(*n))
	})
	// Empty the stack map, including stacks whose count was dropped.
	k.buf.ClearStacks(old, nil)
	return err
}

func (k *kernel) Forget(tgid uint32) {
	k.Attachment.Forget(tgid)
	if k.uw != nil {
		k.uw.pending.Forget(tgid)
	}
}

func (k *kernel) Close() error {
	errs := []error{k.Attachment.Close()}
	for _, fd := range k.events {
		errs = append(errs, unix.Close(fd))
	}
	k.events = nil
	return errors.Join(append(errs, k.buf.Close(), k.objs.Close())...)
}

// Frequency is the sampling frequency in Hz.
func (s *Sampler) Frequency() int { return s.freq }

// Stats are sampler-wide totals since Open.
type Stats struct {
	Samples          uint64 // samples of target processes
	UserStacksLost   uint64 // user stack not recorded (map full or collision)
	KernelStacksLost uint64
	SamplesLost      uint64 // count map full
}

// Stats reads the sampler-wide counters; a growing UserStacksLost or
// SamplesLost means the maps are too small.
func (s *Sampler) Stats() (Stats, error) {
	v, err := s.ReadStats(s.k.objs.Stats, oncpubpf.NumStats)
	if err != nil {
		return Stats{}, err
	}
	// A sample is lost when the counts map or the snapshot ring is full.
	lost := v[oncpubpf.StatCountLost] + v[oncpubpf.StatEventLost]
	return Stats{v[oncpubpf.StatSamples], v[oncpubpf.StatUserStackLost], v[oncpubpf.StatKernelStackLost], lost}, nil
}

// Manager loads the sampler when the first process is added and unloads it
// when the last subscription closes, so that nothing runs in the kernel
// while no on-CPU task does. It is safe for concurrent use.
type Manager = stackprof.Manager[Count]

// NewManager returns a Manager; opts are checked now. Its StartTask
// starts sampling a task's process.
func NewManager(opts Options) (*Manager, error) {
	return stackprof.NewManagerFor[Count](Target, opts, (*Options).validate, Open)
}

func privilegeHint(err error) error { return stackprof.PrivilegeHint(err, "on-CPU profiling") }
