//go:build linux

package symbolize

import (
	"bytes"
	"container/heap"
	"io"
	"os"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// perfMap is a JIT runtime's /tmp/perf-PID.map: "START SIZE name" lines,
// START and SIZE in hex. Runtimes write it in two ways, and both must keep
// working while a task samples:
//   - append as they compile (V8 --perf-basic-prof, .NET, LuaJIT): only
//     the new lines are read, and a later line wins over the earlier ones it
//     overlaps, because the runtime reused or moved that code;
//   - rewrite the whole file (HotSpot's Compiler.perfmap): noticed by a new
//     inode, a shorter file or changed bytes where our reading stopped, and
//     read again from the start.
type perfMap struct {
	path string

	dev, ino uint64
	mtime    time.Time
	offset   int64  // bytes consumed: complete lines only
	tail     []byte // the bytes just before offset, to notice a rewrite
	syms     symtab // non-overlapping, sorted
	checked  time.Time
	stale    bool // force a full read at the next refresh
}

const (
	perfMapCheckAge = time.Second           // stat the file at most this often on hits
	perfMapMissAge  = 10 * time.Millisecond // and this often on misses
	perfMapTailLen  = 64
)

// refresh reads what changed in the file. A missing file keeps what we had:
// the process may have exited (or not written its map yet).
func (pm *perfMap) refresh(now time.Time) {
	pm.checked = now
	st, err := os.Stat(pm.path)
	if err != nil {
		return
	}
	var dev, ino uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		dev, ino = uint64(sys.Dev), sys.Ino
	}
	size := st.Size()
	full := pm.stale || dev != pm.dev || ino != pm.ino || size < pm.offset
	if !full && size == pm.offset && st.ModTime().Equal(pm.mtime) {
		return
	}
	f, err := os.Open(pm.path)
	if err != nil {
		return
	}
	defer f.Close()
	if !full && len(pm.tail) > 0 {
		buf := make([]byte, len(pm.tail))
		if _, err := f.ReadAt(buf, pm.offset-int64(len(buf))); err != nil || !bytes.Equal(buf, pm.tail) {
			full = true // rewritten in place
		}
	}
	start := pm.offset
	if full {
		start = 0
	}
	if !full && size == pm.offset {
		pm.mtime = st.ModTime()
		return
	}
	data, err := io.ReadAll(io.NewSectionReader(f, start, size-start))
	if err != nil {
		return
	}
	// A line the runtime is still writing is read next time.
	end := bytes.LastIndexByte(data, '\n') + 1
	added := parsePerfMap(data[:end])
	if full {
		pm.syms = nil
	}
	if len(added) > 0 {
		pm.syms = overlay(pm.syms, added)
	}
	pm.dev, pm.ino, pm.mtime, pm.stale = dev, ino, st.ModTime(), false
	pm.offset = start + int64(end)
	pm.tail = append(pm.tail[:0], data[max(0, end-perfMapTailLen):end]...)
	if end < perfMapTailLen && start > 0 {
		// Keep the check window full: take the rest from before.
		pm.tail = nil
		buf := make([]byte, min(perfMapTailLen, pm.offset))
		if _, err := f.ReadAt(buf, pm.offset-int64(len(buf))); err == nil {
			pm.tail = buf
		}
	}
}

// parsePerfMap returns the entries of complete lines in file order; lines
// that do not parse are skipped.
func parsePerfMap(data []byte) []symbol {
	var out []symbol
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSpace(line)
		a, rest, ok1 := bytes.Cut(line, []byte(" "))
		b, name, ok2 := bytes.Cut(rest, []byte(" "))
		if !ok1 || !ok2 || len(name) == 0 {
			continue
		}
		start, err1 := strconv.ParseUint(string(bytes.TrimPrefix(a, []byte("0x"))), 16, 64)
		size, err2 := strconv.ParseUint(string(bytes.TrimPrefix(b, []byte("0x"))), 16, 64)
		if err1 != nil || err2 != nil || size == 0 || start+size < start {
			continue
		}
		out = append(out, symbol{addr: start, size: size, name: string(name)})
	}
	return out
}

// overlay lays the entries of added (in file order) over base (sorted,
// non-overlapping) and returns the sorted, non-overlapping result in which
// every address belongs to the last entry that covers it: a later line of
// a perf map describes what is at that address now. A symbol cut by a
// later one keeps the parts it still covers.
func overlay(base symtab, added []symbol) symtab {
	if merged, ok := mergeDisjoint(base, added); ok {
		return merged
	}
	type iv struct {
		symbol
		prio int
	}
	ivs := make([]iv, 0, len(base)+len(added))
	for _, s := range base {
		ivs = append(ivs, iv{s, 0})
	}
	for i, s := range added {
		ivs = append(ivs, iv{s, i + 1})
	}
	// Sweep over the interval boundaries with the covering intervals in a
	// heap by priority (removed lazily once past their end).
	type event struct {
		at  uint64
		idx int
	}
	events := make([]event, 0, len(ivs))
	for i := range ivs {
		events = append(events, event{ivs[i].addr, i})
	}
	sort.Slice(events, func(i, j int) bool { return events[i].at < events[j].at })
	bounds := make([]uint64, 0, 2*len(ivs))
	for _, v := range ivs {
		bounds = append(bounds, v.addr, v.addr+v.size)
	}
	sort.Slice(bounds, func(i, j int) bool { return bounds[i] < bounds[j] })

	h := &prioHeap{prio: func(i int) int { return ivs[i].prio }}
	out := make(symtab, 0, len(ivs))
	next := 0
	for bi, at := range bounds {
		if bi > 0 && bounds[bi-1] == at {
			continue
		}
		for next < len(events) && events[next].at <= at {
			heap.Push(h, events[next].idx)
			next++
		}
		for h.Len() > 0 && ivs[h.idx[0]].addr+ivs[h.idx[0]].size <= at {
			heap.Pop(h)
		}
		if h.Len() == 0 {
			continue
		}
		// The segment [at, next boundary) belongs to the top interval.
		end := at
		for _, b := range bounds[bi:] {
			if b > at {
				end = b
				break
			}
		}
		if end == at {
			continue
		}
		top := ivs[h.idx[0]].symbol
		if n := len(out); n > 0 && out[n-1].name == top.name && out[n-1].addr+out[n-1].size == at {
			out[n-1].size += end - at
			continue
		}
		out = append(out, symbol{addr: at, size: end - at, name: top.name})
	}
	return out
}

// mergeDisjoint is overlay's fast path for the common case where no
// entry overlaps another: a sort and a merge.
func mergeDisjoint(base symtab, added []symbol) (symtab, bool) {
	sorted := append(symtab(nil), added...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].addr < sorted[j].addr })
	out := make(symtab, 0, len(base)+len(sorted))
	i, j := 0, 0
	for i < len(base) || j < len(sorted) {
		var next symbol
		if j == len(sorted) || (i < len(base) && base[i].addr < sorted[j].addr) {
			next, i = base[i], i+1
		} else {
			next, j = sorted[j], j+1
		}
		if n := len(out); n > 0 && out[n-1].addr+out[n-1].size > next.addr {
			return nil, false
		}
		out = append(out, next)
	}
	return out, true
}

// prioHeap is a max-heap of interval indexes by priority.
type prioHeap struct {
	idx  []int
	prio func(int) int
}

func (h *prioHeap) Len() int           { return len(h.idx) }
func (h *prioHeap) Less(i, j int) bool { return h.prio(h.idx[i]) > h.prio(h.idx[j]) }
func (h *prioHeap) Swap(i, j int)      { h.idx[i], h.idx[j] = h.idx[j], h.idx[i] }
func (h *prioHeap) Push(x any)         { h.idx = append(h.idx, x.(int)) }
func (h *prioHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}
