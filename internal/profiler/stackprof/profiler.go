//go:build linux

package stackprof

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/contprof/contprof/bpf/load"
	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/cpython"
)

// Value is what a source counts per stack: samples on-CPU, time and blocks
// off-CPU.
type Value[V any] interface {
	// Add returns the sum of two values of one stack.
	Add(V) V
	// Weight is the profile's sample value, and orders a batch.
	Weight() uint64
}

// Kernel is the loaded, attached BPF side of one event source.
type Kernel[V Value[V]] interface {
	// Filter is the target_pids bitmap the programs consult.
	Filter() *ebpf.Map
	// Collect moves what the kernel gathered since the previous Collect
	// into c (calls to c.Add), and clears what the kernel no longer needs.
	Collect(c *Collection[V]) error
	// Added tells the source that process tgid has just entered the
	// filter (an unwinder starts reading its binaries).
	Added(tgid uint32)
	// Forget drops what the kernel keeps for process tgid, which has just
	// left the filter.
	Forget(tgid uint32)
	// Close detaches and unloads the programs.
	Close() error
}

// PythonKernel is a Kernel whose programs walk CPython frames
// (bpf/headers/cpython.h): the runtime configures the walker for every
// Python process that enters the filter.
type PythonKernel interface {
	PythonMaps() cpython.Maps
}

// Config describes an event source to the runtime.
type Config struct {
	// Name is the task target the source serves ("on_cpu"); it prefixes
	// errors.
	Name string
	// Kind is the kind of the profiles.
	Kind profiles.Kind
	// MaxPIDs is how many processes can be profiled at once.
	MaxPIDs int
	// Trim, when set, rewrites each sample's frames before they go into a
	// profile (off-CPU drops the tracing machinery's kernel frames).
	Trim func([]profiles.Frame) []profiles.Frame
}

// ErrClosed is returned by operations on a closed Profiler or Subscription.
var ErrClosed = errors.New("profiler is closed")

// Profiler is a loaded, attached event source shared by any number of
// Subscriptions (tasks), each naming one process.
type Profiler[V Value[V]] struct {
	cfg    Config
	pidMax uint32
	filter pidFilter

	mu     sync.Mutex
	k      Kernel[V]
	subs   map[uint32][]*Subscription[V]
	py     *cpython.Registry // nil: the source does not walk Python
	closed bool
}

// New wraps a loaded kernel side; nothing is recorded until a process is
// added. s is the Setup the kernel side was loaded with.
func New[V Value[V]](cfg Config, s Setup, k Kernel[V]) *Profiler[V] {
	p := &Profiler[V]{cfg: cfg, pidMax: s.PIDMax, filter: pidFilter{k.Filter()}, k: k, subs: map[uint32][]*Subscription[V]{}}
	if pk, ok := k.(PythonKernel); ok {
		p.py = cpython.NewRegistry(pk.PythonMaps())
	}
	return p
}

// Add starts recording process pid (as seen in this process's /proc) for a
// new subscriber. Several subscriptions may name the same process; it stays
// in the filter until the last one is closed.
func (p *Profiler[V]) Add(pid int) (*Subscription[V], error) {
	name := p.cfg.Name
	if pid <= 0 || pid > 1<<22 {
		return nil, fmt.Errorf("%s pid: %d is not a valid process id", name, pid)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	key := uint32(pid)
	if len(p.subs[key]) == 0 {
		if key >= p.pidMax {
			return nil, fmt.Errorf("%s pid: %d is not below pid_max %d", name, pid, p.pidMax)
		}
		if len(p.subs) >= p.cfg.MaxPIDs {
			return nil, fmt.Errorf("%s: cannot profile pid %d: already profiling the maximum of %d processes", name, pid, p.cfg.MaxPIDs)
		}
		if err := p.filter.set(key, true); err != nil {
			return nil, fmt.Errorf("%s: add pid %d to the filter: %w", name, pid, err)
		}
		if p.py != nil {
			p.py.Add(pid, key)
		}
		p.k.Added(key)
	}
	now := time.Now()
	sub := &Subscription[V]{p: p, pid: key, created: now, start: now, acc: map[string]*RawSample[V]{}}
	p.subs[key] = append(p.subs[key], sub)
	return sub, nil
}

// Wants reports whether process pid has a subscriber now (for sources
// that receive samples outside Collect, e.g. from a ring buffer).
func (p *Profiler[V]) Wants(pid uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && len(p.subs[pid]) > 0
}

// IsTarget reports whether pid is in the in-kernel filter now.
func (p *Profiler[V]) IsTarget(pid int) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false, ErrClosed
	}
	return p.filter.has(uint32(pid))
}

// Base is p itself; a source embedding *Profiler satisfies Source with it.
func (p *Profiler[V]) Base() *Profiler[V] { return p }

// ReadStats reads the n per-CPU counters of the source's stats map,
// summed over CPUs.
func (p *Profiler[V]) ReadStats(m *ebpf.Map, n int) ([]uint64, error) {
	var v []uint64
	err := p.Locked(func() (err error) {
		v, err = load.SumStats(m, n)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.cfg.Name, err)
	}
	return v, nil
}

// Kernel is the source's kernel side (for its own statistics); callers
// that read its maps hold no lock, so only read what the programs write.
func (p *Profiler[V]) Kernel() Kernel[V] { return p.k }

// Locked runs fn under the profiler's lock unless it is closed.
func (p *Profiler[V]) Locked(fn func() error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	return fn()
}

// Close detaches and unloads everything. Subscriptions still open return
// ErrClosed from then on. The kernel side is closed without the lock held:
// a source's reader may be waiting for it.
func (p *Profiler[V]) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for _, subs := range p.subs {
		for _, sub := range subs {
			sub.closed = true
		}
	}
	p.subs = nil
	var err error
	if p.py != nil {
		err = p.py.Close()
	}
	p.mu.Unlock()
	return errors.Join(err, p.k.Close())
}

func (p *Profiler[V]) remove(sub *Subscription[V]) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if sub.closed {
		return nil
	}
	sub.closed = true
	if p.closed {
		return nil
	}
	list := p.subs[sub.pid]
	for i, x := range list {
		if x == sub {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) > 0 {
		p.subs[sub.pid] = list
		return nil
	}
	delete(p.subs, sub.pid)
	var err error
	if e := p.filter.set(sub.pid, false); e != nil {
		err = fmt.Errorf("%s: remove pid %d from the filter: %w", p.cfg.Name, sub.pid, e)
	}
	if p.py != nil {
		err = errors.Join(err, p.py.Remove(sub.pid))
	}
	p.k.Forget(sub.pid)
	return err
}

// idle reports whether no subscription is open.
func (p *Profiler[V]) idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.subs) == 0
}

// Collection is one collection in progress, handed to Kernel.Collect.
type Collection[V Value[V]] struct {
	p *Profiler[V]
	// Final is set when the collection is for a subscription's last
	// report (Subscription.DrainFinal).
	Final *Final
	final *Subscription[V]
}

// Final names the subscription a last report is for.
type Final struct {
	PID uint32
	// Since is when the subscription began.
	Since time.Time
}

// Stack is one sample's stacks, addresses leaf first as the kernel records
// them. UserLost and KernelLost are set when a stack could not be recorded
// (stack map full, a hash collision); the sample still counts. Truncated
// is set when the user stack was cut (frame limit, end of a stack copy)
// before its outermost frame.
//
// Python is the interpreter's stack of the sample (Python processes), nil
// if none: see PythonStack.
type Stack struct {
	User, Kernel         []uint64
	UserLost, KernelLost bool
	Truncated            bool
	Python               *cpython.RawStack
}

// PythonStack reads Python stack id of process pid from the source's
// py_stacks map (an LRU: read it when the sample is collected); nil when
// there is none.
func (c *Collection[V]) PythonStack(pid uint32, id uint64) *cpython.RawStack {
	return c.p.PythonStack(pid, id)
}

// PythonStack is Collection.PythonStack for sources that receive samples
// outside Collect (a ring buffer reader).
//
// It does not take the profiler's lock (the registry has its own): a
// collection holds that lock while it waits for the reader (Sync).
func (p *Profiler[V]) PythonStack(pid uint32, id uint64) *cpython.RawStack {
	if p.py == nil {
		return nil
	}
	return p.py.Stack(pid, id)
}

// Wants reports whether process pid has a subscriber.
func (c *Collection[V]) Wants(pid uint32) bool { return len(c.p.subs[pid]) > 0 }

// Add counts v at st for every subscriber of process pid.
func (c *Collection[V]) Add(pid uint32, st Stack, v V) {
	subs := c.p.subs[pid]
	if len(subs) == 0 {
		return // the process was removed since
	}
	k := st.Key()
	for _, sub := range subs {
		sub.addLocked(k, st, v)
	}
}

// AddFinal counts v at st for the subscription of c.Final only.
func (c *Collection[V]) AddFinal(st Stack, v V) {
	if c.final != nil {
		c.final.addLocked(st.Key(), st, v)
	}
}

// Key identifies the stack among those of one process: samples with equal
// keys are counted together.
func (st *Stack) Key() string {
	b := make([]byte, 0, 8*(len(st.User)+len(st.Kernel))+3)
	for _, a := range st.Kernel {
		b = binary.LittleEndian.AppendUint64(b, a)
	}
	b = append(b, '|')
	for _, a := range st.User {
		b = binary.LittleEndian.AppendUint64(b, a)
	}
	if st.UserLost {
		b = append(b, 'U')
	}
	if st.KernelLost {
		b = append(b, 'K')
	}
	if st.Truncated {
		b = append(b, 'T')
	}
	return string(cpython.AppendKey(b, st.Python))
}

// collectLocked runs the source's Collect for sub's drain.
func (p *Profiler[V]) collectLocked(final *Subscription[V]) error {
	c := &Collection[V]{p: p}
	if final != nil {
		c.Final, c.final = &Final{PID: final.pid, Since: final.created}, final
	}
	if err := p.k.Collect(c); err != nil {
		return fmt.Errorf("%s: %w", p.cfg.Name, err)
	}
	return nil
}
