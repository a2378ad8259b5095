//go:build linux

package symbolize

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"

	"github.com/contprof/contprof/internal/output/profiles"
)

// kernelSyms is /proc/kallsyms: text symbols of the kernel and its modules.
//
// A kernel has 100,000-200,000 of them, and the table is kept as long as a
// task profiles: a string and a slice entry per symbol (about 100 bytes
// each with the line the name was cut from) made it the largest thing in
// the heap while tasks ran. So the names sit in one byte array, a symbol
// is 16 bytes, and a name becomes a string only when a lookup returns it
// (once per symbol: named). Frames then hold small strings of their own,
// not pieces of a whole table, so a stored profile never keeps an old
// table alive after a reload.
type kernelSyms struct {
	syms  []kernelSym // ascending by address, one per address
	names []byte
	// mappings per module index ("" = core, index 0), spanning its symbols.
	mappings []*profiles.Mapping
	named    map[int32]string
}

type kernelSym struct {
	addr    uint64
	nameOff uint32
	nameLen uint16
	module  uint16
}

func loadKallsyms(path string) (*kernelSyms, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseKallsyms(f)
}

// kallsymsMaxNames bounds the name bytes (the offsets are 32 bits).
const kallsymsMaxNames = math.MaxUint32

func parseKallsyms(r io.Reader) (*kernelSyms, error) {
	ks := &kernelSyms{named: map[int32]string{}}
	modules := map[string]uint16{"": 0}
	moduleNames := []string{""}
	var nonZero bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		// "ffffffff81000000 T _stext" or "ffffffffc0a01000 t fn\t[module]"
		var fields [4][]byte
		n := 0
		for f := range bytes.FieldsSeq(sc.Bytes()) {
			if n == len(fields) {
				break
			}
			fields[n] = f
			n++
		}
		if n < 3 {
			continue
		}
		switch string(fields[1]) {
		case "t", "T", "w", "W":
		default:
			continue
		}
		addr, err := strconv.ParseUint(string(fields[0]), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("kallsyms: bad address %q", fields[0])
		}
		if addr != 0 {
			nonZero = true
		}
		name := fields[2]
		if len(name) > math.MaxUint16 || len(ks.names)+len(name) > kallsymsMaxNames {
			return nil, fmt.Errorf("kallsyms: symbol name of %d bytes at %#x is too long", len(name), addr)
		}
		mod := uint16(0)
		if n >= 4 {
			m := string(bytes.Trim(fields[3], "[]"))
			idx, ok := modules[m]
			if !ok {
				if len(moduleNames) > math.MaxUint16 {
					return nil, fmt.Errorf("kallsyms: more than %d modules", math.MaxUint16)
				}
				idx = uint16(len(moduleNames))
				modules[m] = idx
				moduleNames = append(moduleNames, m)
			}
			mod = idx
		}
		ks.syms = append(ks.syms, kernelSym{addr: addr, nameOff: uint32(len(ks.names)), nameLen: uint16(len(name)), module: mod})
		ks.names = append(ks.names, name...)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kallsyms: %w", err)
	}
	if len(ks.syms) == 0 {
		return nil, errors.New("kallsyms: no text symbols")
	}
	if !nonZero {
		return nil, errors.New("kallsyms: addresses are hidden (kernel.kptr_restrict, or not running as root)")
	}
	// Stable: of symbols at one address, the first listed names it.
	slices.SortStableFunc(ks.syms, func(a, b kernelSym) int { return cmp.Compare(a.addr, b.addr) })
	ks.syms = slices.CompactFunc(ks.syms, func(a, b kernelSym) bool { return a.addr == b.addr })
	ks.syms = slices.Clip(ks.syms)
	ks.mappings = make([]*profiles.Mapping, len(moduleNames))
	for _, e := range ks.syms {
		m := ks.mappings[e.module]
		if m == nil {
			file := profiles.KernelMappingFile
			if mod := moduleNames[e.module]; mod != "" {
				file = "[" + mod + "]"
			}
			m = &profiles.Mapping{Start: e.addr, File: file}
			ks.mappings[e.module] = m
		}
		// Symbols have no size: let the mapping reach a page past the last.
		m.Limit = e.addr + 4096
	}
	return ks, nil
}

// name is symbol i's name, made a string once.
func (k *kernelSyms) name(i int) string {
	if s, ok := k.named[int32(i)]; ok {
		return s
	}
	e := k.syms[i]
	s := string(k.names[e.nameOff : e.nameOff+uint32(e.nameLen)])
	k.named[int32(i)] = s
	return s
}

// lookup symbolizes a kernel address. Symbols have no size in kallsyms, so
// an address belongs to the closest symbol below it.
func (k *kernelSyms) lookup(addr uint64) profiles.Frame {
	fr := profiles.Frame{Address: addr, Type: profiles.FrameKernel}
	i := sort.Search(len(k.syms), func(i int) bool { return k.syms[i].addr > addr }) - 1
	if i < 0 {
		return fr
	}
	fr.Function = k.name(i)
	fr.Mapping = k.mappings[k.syms[i].module]
	return fr
}
