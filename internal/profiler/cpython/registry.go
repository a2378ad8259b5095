//go:build linux

package cpython

import (
	"encoding/binary"
	"errors"
	"sync"
)

// Registry keeps the Python walkers of the processes in one BPF program's
// filter: a sampler adds a process when it enters its filter and removes
// it when it leaves. It is safe for concurrent use, with a lock of its
// own: ring buffer readers look stacks up while a collection that waits
// for them holds the sampler's lock.
type Registry struct {
	maps   Maps
	procfs string
	mu     sync.RWMutex
	procs  map[uint32]entry
}

type entry struct {
	proc *Process // nil: not walked
	note string   // Note(proc, err)
}

// NewRegistry returns an empty registry for the walker maps of one program.
func NewRegistry(maps Maps) *Registry {
	return &Registry{maps: maps, procfs: "/proc", procs: map[uint32]entry{}}
}

// Add detects Python in process pid (key: its tgid as the program sees it)
// and configures the walker for it. Failing to is not an error: the
// process is profiled with native frames and Note says why.
func (r *Registry) Add(pid int, key uint32) {
	proc, err := Attach(r.maps, r.procfs, pid, key)
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.procs[key].proc; old != nil {
		_ = old.Close()
	}
	r.procs[key] = entry{proc: proc, note: Note(proc, err)}
}

// Remove stops walking process key.
func (r *Registry) Remove(key uint32) error {
	r.mu.Lock()
	e := r.procs[key]
	delete(r.procs, key)
	r.mu.Unlock()
	if e.proc != nil {
		return e.proc.Close()
	}
	return nil
}

// Close stops walking every process.
func (r *Registry) Close() error {
	r.mu.Lock()
	procs := r.procs
	r.procs = map[uint32]entry{}
	r.mu.Unlock()
	var errs []error
	for _, e := range procs {
		if e.proc != nil {
			errs = append(errs, e.proc.Close())
		}
	}
	return errors.Join(errs...)
}

// Process returns the walker of process key (nil when not walked) and its
// note.
func (r *Registry) Process(key uint32) (*Process, string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e := r.procs[key]
	return e.proc, e.note
}

// Stack reads Python stack id of process key from the program's
// py_stacks; nil when there is none or it is gone.
func (r *Registry) Stack(key uint32, id uint64) *RawStack {
	if id == 0 {
		return nil
	}
	r.mu.RLock()
	e := r.procs[key]
	r.mu.RUnlock()
	if e.proc == nil {
		return nil
	}
	st, ok := e.proc.Stack(id)
	if !ok {
		return nil
	}
	return &st
}

// AppendKey appends st to an aggregation key of raw samples.
func AppendKey(b []byte, st *RawStack) []byte {
	if st == nil {
		return b
	}
	b = append(b, 'P')
	b = binary.LittleEndian.AppendUint32(b, st.Flags)
	for _, f := range st.Frames[:min(st.Len, MaxFrames)] {
		b = binary.LittleEndian.AppendUint64(b, f.Code)
		b = binary.LittleEndian.AppendUint64(b, f.Instr)
		b = append(b, f.Flag)
	}
	return b
}
