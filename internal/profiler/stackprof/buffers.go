//go:build linux

package stackprof

import (
	"fmt"

	"github.com/cilium/ebpf"

	bpfload "github.com/contprof/contprof/bpf/load"
)

// MaxStackDepth is the number of frames a stack map value holds
// (MAX_STACK_DEPTH in bpf/headers/contprof.h).
const MaxStackDepth = 127

// Buffers are the double-buffered counts and stack maps of a program
// (DOUBLE_BUFFER in bpf/headers/contprof.h): the program writes the pair
// active_buf names, user space flips it and drains the other pair.
type Buffers struct {
	Counts, Stacks [2]*ebpf.Map
	Active         *ebpf.Variable

	grace  *bpfload.Grace
	active uint32
	cache  map[[2]int32][]uint64
	trace  [MaxStackDepth]uint64
}

// NewBuffers returns the Buffers of a program's maps and active_buf
// variable, with what their flips wait on; Close releases that.
func NewBuffers(counts, stacks [2]*ebpf.Map, active *ebpf.Variable) (Buffers, error) {
	g, err := bpfload.NewGrace()
	if err != nil {
		return Buffers{}, err
	}
	return Buffers{Counts: counts, Stacks: stacks, Active: active, grace: g}, nil
}

// Close releases what NewBuffers created (not the maps: the program's).
func (b *Buffers) Close() error {
	if b.grace == nil {
		return nil
	}
	err := b.grace.Close()
	b.grace = nil
	return err
}

// Flip makes the program write the other pair and waits until no program
// that may have read the old index is still running; it returns the pair
// written until now, stable from then on. It also forgets the stacks read
// during the previous collection.
func (b *Buffers) Flip() (old uint32, err error) {
	old = b.active
	b.active ^= 1
	if err := b.Active.Set(b.active); err != nil {
		return old, fmt.Errorf("flip buffers: %w", err)
	}
	if err := b.grace.Wait(); err != nil {
		return old, fmt.Errorf("flip buffers: wait for programs in flight: %w", err)
	}
	clear(b.cache)
	return old, nil
}

// ActiveIndex is the pair the program writes now.
func (b *Buffers) ActiveIndex() uint32 { return b.active }

// Stack reads stack id of pair buf (leaf first), once per collection; nil
// for a negative id (not recorded) or an id no longer in the map.
func (b *Buffers) Stack(buf uint32, id int32) []uint64 {
	if id < 0 {
		return nil
	}
	k := [2]int32{int32(buf & 1), id}
	if st, ok := b.cache[k]; ok {
		return st
	}
	var st []uint64
	if err := b.Stacks[buf&1].Lookup(uint32(id), &b.trace); err == nil {
		n := 0
		for n < len(b.trace) && b.trace[n] != 0 {
			n++
		}
		st = append([]uint64(nil), b.trace[:n]...)
	}
	if b.cache == nil {
		b.cache = map[[2]int32][]uint64{}
	}
	b.cache[k] = st
	return st
}

// ClearStacks empties stack map buf but for the ids keep names (nil: all).
func (b *Buffers) ClearStacks(buf uint32, keep map[int32]bool) {
	var (
		id  uint32
		ids []uint32
	)
	m := b.Stacks[buf&1]
	it := m.Iterate()
	for it.Next(&id, &b.trace) {
		if !keep[int32(id)] {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		_ = m.Delete(id)
	}
}

// Drain calls fn for every entry of counts map m, then deletes them.
func Drain[K, V any](m *ebpf.Map, fn func(*K, *V)) error {
	var (
		key  K
		val  V
		keys []K
	)
	it := m.Iterate()
	for it.Next(&key, &val) {
		keys = append(keys, key)
		fn(&key, &val)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read counts: %w", err)
	}
	if len(keys) > 0 {
		if _, err := m.BatchDelete(keys, nil); err != nil {
			for i := range keys { // batch ops need 5.6+
				_ = m.Delete(&keys[i])
			}
		}
	}
	return nil
}

// Scan calls fn for every entry of m.
func Scan[K, V any](m *ebpf.Map, fn func(*K, *V)) error {
	var (
		key K
		val V
	)
	it := m.Iterate()
	for it.Next(&key, &val) {
		fn(&key, &val)
	}
	return it.Err()
}

// pidFilter is the target_pids bitmap (PID_FILTER_BITMAP in
// bpf/headers/contprof.h): bit tgid%64 of word tgid/64. Only user space
// writes it; callers serialize.
type pidFilter struct{ m *ebpf.Map }

func (f pidFilter) set(tgid uint32, on bool) error {
	word, bit := tgid/64, uint64(1)<<(tgid%64)
	var bits uint64
	if err := f.m.Lookup(word, &bits); err != nil {
		return err
	}
	if on {
		bits |= bit
	} else {
		bits &^= bit
	}
	return f.m.Update(word, bits, ebpf.UpdateExist)
}

func (f pidFilter) has(tgid uint32) (bool, error) {
	var bits uint64
	if err := f.m.Lookup(tgid/64, &bits); err != nil {
		return false, err
	}
	return bits&(uint64(1)<<(tgid%64)) != 0, nil
}
