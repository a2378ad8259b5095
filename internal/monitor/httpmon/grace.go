//go:build linux

package httpmon

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// graceWaiter waits for the BPF programs running at the time of the call
// to finish. Tracing programs run inside an RCU read-side section, and the
// kernel updates a map-in-map only after an RCU grace period
// (maybe_wait_bpf_programs), so that its caller knows no program still
// uses the old inner map: updating a one-slot array of maps is such a
// wait. A sleep would only make it likely (a preempted program can take
// longer).
type graceWaiter struct {
	outer, inner *ebpf.Map
}

func newGraceWaiter() (*graceWaiter, error) {
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
	return &graceWaiter{outer: outer, inner: inner}, nil
}

// wait returns after an RCU grace period.
func (g *graceWaiter) wait() error {
	return g.outer.Update(uint32(0), g.inner, ebpf.UpdateAny)
}

func (g *graceWaiter) close() error {
	return errors.Join(g.outer.Close(), g.inner.Close())
}
