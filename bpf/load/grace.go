//go:build linux

package load

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Grace waits for the BPF programs running at the time of the call to
// finish: after flipping what programs write to (a double buffer, an
// interval), user space reads the old side only once no program can
// still be adding to it. Tracing and perf_event programs run inside an
// RCU read-side section, and the kernel updates a map-in-map only after
// an RCU grace period (maybe_wait_bpf_programs), so that its caller knows
// no program still uses the old inner map: updating a one-slot array of
// maps is such a wait. A sleep would only make it likely (a preempted
// program can take longer).
type Grace struct {
	outer, inner *ebpf.Map
}

// NewGrace creates the two small maps a wait updates.
func NewGrace() (*Grace, error) {
	innerSpec := &ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1}
	inner, err := ebpf.NewMap(innerSpec)
	if err != nil {
		return nil, fmt.Errorf("grace period map: %w", err)
	}
	outer, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.ArrayOfMaps, KeySize: 4, MaxEntries: 1, InnerMap: innerSpec})
	if err != nil {
		inner.Close()
		return nil, fmt.Errorf("grace period map: %w", err)
	}
	return &Grace{outer: outer, inner: inner}, nil
}

// Wait returns after an RCU grace period (one or two scheduler ticks,
// sleeping).
func (g *Grace) Wait() error {
	return g.outer.Update(uint32(0), g.inner, ebpf.UpdateAny)
}

// Close releases the maps. The inner map is taken out of the outer one
// first: the kernel frees an array of maps from a work queue and drops its
// inner maps only then, so closing the outer map alone would leave the
// inner one alive (and listed) for a moment after Close, or after exit.
func (g *Grace) Close() error {
	var errs []error
	if err := g.outer.Delete(uint32(0)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		errs = append(errs, fmt.Errorf("grace period map: %w", err))
	}
	return errors.Join(append(errs, g.outer.Close(), g.inner.Close())...)
}
