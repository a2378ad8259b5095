//go:build linux

// Package load loads a bpf2go collection with a loader's settings: map
// sizes and the constants the program reads (volatile const), with one
// error shape for every program.
package load

import (
	"errors"
	"fmt"
	"sort"

	"github.com/cilium/ebpf"
)

// Common are the settings of what bpf/headers/contprof.h declares, by its
// names; zero values keep the program's.
type Common struct {
	// FilterWords sizes the PID_FILTER_BITMAP (64 PIDs a word).
	FilterWords uint32
	// StackEntries and CountEntries size each map of a DOUBLE_BUFFER.
	StackEntries, CountEntries uint32
	// PIDNamespaceDev and PIDNamespaceIno identify the loader's PID
	// namespace for current_tgid(); zero means the initial namespace (the
	// fast path).
	PIDNamespaceDev, PIDNamespaceIno uint64
	// Unwind makes the programs send user stack snapshots (ustack.h) to
	// the events ring buffer, sized by EventBytes, instead of counting
	// frame-pointer stacks: the DOUBLE_BUFFER maps are then made minimal.
	Unwind     bool
	EventBytes uint32
}

// Settings are applied to the spec before it is loaded.
type Settings struct {
	Common
	// Entries sets the capacity of maps by name; 0 keeps the program's.
	Entries map[string]uint32
	// Vars sets global variables by name.
	Vars map[string]any
}

// Load applies s to spec and loads it into objs (a bpf2go objects struct);
// what names the program in errors ("on-CPU sampler").
func Load(spec *ebpf.CollectionSpec, s Settings, objs any, what string) error {
	c := s.Common
	vars := map[string]any{"pidns_dev": c.PIDNamespaceDev, "pidns_ino": c.PIDNamespaceIno}
	if c.Unwind {
		vars["unwind_user"] = uint32(1)
		c.StackEntries, c.CountEntries = 1, 1
	}
	var cpus uint32 // ustack.h's scratch space: one entry per possible CPU
	if n, err := ebpf.PossibleCPU(); err == nil {
		cpus = uint32(n)
	}
	entries := map[string]uint32{
		"events": c.EventBytes, "ustack_scratch": cpus,
		"target_pids": c.FilterWords,
		"stacks_0":    c.StackEntries, "stacks_1": c.StackEntries,
		"counts_0": c.CountEntries, "counts_1": c.CountEntries,
	}
	for name, n := range s.Entries {
		entries[name] = n
	}
	for name, n := range entries {
		if m := spec.Maps[name]; m != nil && n > 0 {
			m.MaxEntries = n
		}
	}
	for name, v := range s.Vars {
		vars[name] = v
	}
	s.Vars = vars
	names := make([]string, 0, len(s.Vars))
	for name := range s.Vars {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v := spec.Variables[name]
		if v == nil {
			return fmt.Errorf("load %s: the program has no variable %s", what, name)
		}
		if err := v.Set(s.Vars[name]); err != nil {
			return fmt.Errorf("load %s: set %s: %w", what, name, err)
		}
	}
	if err := spec.LoadAndAssign(objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("load %s: verifier rejected the program: %+v", what, ve)
		}
		return fmt.Errorf("load %s: %w", what, err)
	}
	return nil
}

// Generated loads the spec a bpf2go loadX function returns, as Load does.
func Generated(loadSpec func() (*ebpf.CollectionSpec, error), s Settings, objs any, what string) error {
	spec, err := loadSpec()
	if err != nil {
		return err
	}
	return Load(spec, s, objs, what)
}

// New loads the spec a bpf2go loadX function returns into a new T (a
// struct embedding bpf2go's objects), as Load does.
func New[T any](loadSpec func() (*ebpf.CollectionSpec, error), s Settings, what string) (*T, error) {
	objs := new(T)
	if err := Generated(loadSpec, s, objs, what); err != nil {
		return nil, err
	}
	return objs, nil
}

// SumStats reads the n per-CPU counters of a STATS map (contprof.h),
// summed over CPUs.
func SumStats(m *ebpf.Map, n int) ([]uint64, error) {
	sums := make([]uint64, n)
	var perCPU []uint64
	for i := range sums {
		if err := m.Lookup(uint32(i), &perCPU); err != nil {
			return nil, fmt.Errorf("read stats: %w", err)
		}
		for _, v := range perCPU {
			sums[i] += v
		}
	}
	return sums, nil
}
