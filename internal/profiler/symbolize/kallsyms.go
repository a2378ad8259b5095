//go:build linux

package symbolize

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/contprof/contprof/internal/output/profiles"
)

// kernelSyms is /proc/kallsyms: text symbols of the kernel and its modules.
type kernelSyms struct {
	syms   symtab
	module []string // module of syms[i], "" for the core kernel
	// mappings per module ("" = core), spanning its symbols.
	mappings map[string]*profiles.Mapping
}

func loadKallsyms(path string) (*kernelSyms, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseKallsyms(f)
}

func parseKallsyms(r io.Reader) (*kernelSyms, error) {
	type entry struct {
		symbol
		module string
	}
	var entries []entry
	var nonZero bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		// "ffffffff81000000 T _stext" or "ffffffffc0a01000 t fn\t[module]"
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		switch fields[1] {
		case "t", "T", "w", "W":
		default:
			continue
		}
		addr, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("kallsyms: bad address %q", fields[0])
		}
		if addr != 0 {
			nonZero = true
		}
		e := entry{symbol: symbol{addr: addr, name: fields[2]}}
		if len(fields) >= 4 {
			e.module = strings.Trim(fields[3], "[]")
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kallsyms: %w", err)
	}
	if len(entries) == 0 {
		return nil, errors.New("kallsyms: no text symbols")
	}
	if !nonZero {
		return nil, errors.New("kallsyms: addresses are hidden (kernel.kptr_restrict, or not running as root)")
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].addr < entries[j].addr })
	ks := &kernelSyms{mappings: map[string]*profiles.Mapping{}}
	for _, e := range entries {
		if n := len(ks.syms); n > 0 && ks.syms[n-1].addr == e.addr {
			continue
		}
		ks.syms = append(ks.syms, e.symbol)
		ks.module = append(ks.module, e.module)
		m := ks.mappings[e.module]
		if m == nil {
			file := profiles.KernelMappingFile
			if e.module != "" {
				file = "[" + e.module + "]"
			}
			m = &profiles.Mapping{Start: e.addr, File: file}
			ks.mappings[e.module] = m
		}
		// Symbols have no size: let the mapping reach a page past the last.
		m.Limit = e.addr + 4096
	}
	return ks, nil
}

// lookup symbolizes a kernel address. Symbols have no size in kallsyms, so
// an address belongs to the closest symbol below it.
func (k *kernelSyms) lookup(addr uint64) profiles.Frame {
	fr := profiles.Frame{Address: addr, Type: profiles.FrameKernel}
	i := sort.Search(len(k.syms), func(i int) bool { return k.syms[i].addr > addr }) - 1
	if i < 0 {
		return fr
	}
	fr.Function = k.syms[i].name
	fr.Mapping = k.mappings[k.module[i]]
	return fr
}
