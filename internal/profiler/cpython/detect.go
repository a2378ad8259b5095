package cpython

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/contprof/contprof/internal/monitor/procfs"
)

// ErrNotPython is returned by Detect for processes without a CPython
// interpreter.
var ErrNotPython = errors.New("not a CPython process")

// Target is the interpreter found in one process.
type Target struct {
	PID     int
	Version Version
	// Path is the ELF that holds the interpreter, as the process sees it
	// (the executable, or libpython).
	Path string
	// Runtime and CodeType are the addresses of _PyRuntime and
	// PyCode_Type in the process (load bias applied).
	Runtime, CodeType uint64
	Offsets           Offsets
}

// Detect finds the CPython interpreter of process pid. It returns an error
// wrapping ErrNotPython when the process has none, and an error naming the
// version when the version is not supported.
func Detect(procfs string, pid int) (*Target, error) {
	if procfs == "" {
		procfs = "/proc"
	}
	maps, err := readMaps(procfs, pid)
	if err != nil {
		return nil, fmt.Errorf("cpython: pid %d: %w", pid, err)
	}
	exe, _ := os.Readlink(fmt.Sprintf("%s/%d/exe", procfs, pid))
	seen := map[string]bool{}
	for _, m := range maps {
		if m.path == "" || seen[m.path] || !(m.path == exe || strings.Contains(filepath.Base(m.path), "libpython")) {
			continue
		}
		seen[m.path] = true
		t, err := inspect(procfs, pid, m.path, maps)
		if err != nil || t != nil {
			return t, err
		}
	}
	return nil, fmt.Errorf("cpython: pid %d (%s): %w", pid, exe, ErrNotPython)
}

type mapLine struct {
	start, offset uint64
	path          string
}

func readMaps(procRoot string, pid int) ([]mapLine, error) {
	lines, err := procfs.ReadMaps(procRoot, pid)
	var out []mapLine
	for _, ml := range lines {
		if ml.FileBacked() {
			out = append(out, mapLine{start: ml.Start, offset: ml.Offset, path: ml.Path})
		}
	}
	return out, err
}

// inspect returns the target when path (mapped in pid) holds _PyRuntime,
// nil when it does not.
func inspect(procfs string, pid int, path string, maps []mapLine) (*Target, error) {
	f, err := elf.Open(fmt.Sprintf("%s/%d/root%s", procfs, pid, path))
	if err != nil {
		return nil, nil // not readable: not ours to judge
	}
	defer f.Close()
	syms, _ := f.DynamicSymbols()
	addr := map[string]uint64{}
	for _, s := range syms {
		switch s.Name {
		case "_PyRuntime", "PyCode_Type", "Py_Version":
			if s.Value != 0 {
				addr[s.Name] = s.Value
			}
		}
	}
	if addr["_PyRuntime"] == 0 {
		return nil, nil
	}
	t := &Target{PID: pid, Path: path}
	if addr["PyCode_Type"] == 0 {
		return nil, fmt.Errorf("cpython: pid %d: %s exports _PyRuntime but not PyCode_Type", pid, path)
	}
	t.Version, err = versionOf(f, path, addr["Py_Version"])
	if err != nil {
		return nil, fmt.Errorf("cpython: pid %d: %w", pid, err)
	}
	if t.Offsets, err = OffsetsFor(t.Version); err != nil {
		return nil, err
	}
	if t.Version.Minor >= 13 {
		if err := debugOffsets(f, addr["_PyRuntime"], t.Version, &t.Offsets); err != nil {
			return nil, fmt.Errorf("cpython: pid %d: %w", pid, err)
		}
	}
	bias, err := loadBias(f, path, maps)
	if err != nil {
		return nil, fmt.Errorf("cpython: pid %d: %w", pid, err)
	}
	t.Runtime, t.CodeType = addr["_PyRuntime"]+bias, addr["PyCode_Type"]+bias
	return t, nil
}

var nameVersion = regexp.MustCompile(`python(\d)\.(\d+)`)

// versionOf reads Py_Version (PY_VERSION_HEX, exported since 3.11), or
// takes the version from the file name (python3.9, libpython3.9.so.1.0).
func versionOf(f *elf.File, path string, pyVersion uint64) (Version, error) {
	if pyVersion != 0 {
		if b, err := readVaddr(f, pyVersion, 4); err == nil {
			hex := binary.LittleEndian.Uint32(b)
			return Version{Major: int(hex >> 24), Minor: int(hex >> 16 & 0xff), Micro: int(hex >> 8 & 0xff)}, nil
		}
	}
	if m := nameVersion.FindStringSubmatch(filepath.Base(path)); m != nil {
		major, _ := strconv.Atoi(m[1])
		minor, _ := strconv.Atoi(m[2])
		return Version{Major: major, Minor: minor, Micro: -1}, nil
	}
	return Version{}, fmt.Errorf("cannot tell the Python version of %s (no Py_Version symbol, no version in the file name)", path)
}

// readVaddr reads n bytes of the file's initialized data at vaddr.
func readVaddr(f *elf.File, vaddr uint64, n int) ([]byte, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || vaddr < p.Vaddr || vaddr+uint64(n) > p.Vaddr+p.Filesz {
			continue
		}
		b := make([]byte, n)
		if _, err := p.ReadAt(b, int64(vaddr-p.Vaddr)); err != nil {
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("address %#x is not in the file's initialized data", vaddr)
}

// loadBias is where the process mapped the file minus its link address.
func loadBias(f *elf.File, path string, maps []mapLine) (uint64, error) {
	if f.Type == elf.ET_EXEC {
		return 0, nil
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		// The first PT_LOAD: find the mapping of its page-aligned offset.
		const page = 4096
		for _, m := range maps {
			if m.path == path && m.offset == p.Off&^(page-1) {
				return m.start - p.Vaddr&^(page-1), nil
			}
		}
		break
	}
	return 0, fmt.Errorf("cannot find the load address of %s", path)
}

// debugOffsets overrides o with _PyRuntime.debug_offsets (3.13+), the
// offsets the interpreter publishes for out-of-process tools.
func debugOffsets(f *elf.File, runtime uint64, v Version, o *Offsets) error {
	const n = 8 + 8 + 8 + 3*8 + 13*8 + 9*8 + 6*8 + 10*8
	b, err := readVaddr(f, runtime, n)
	if err != nil {
		return fmt.Errorf("read _PyRuntime.debug_offsets: %w", err)
	}
	if !bytes.Equal(b[:8], []byte("xdebugpy")) {
		return fmt.Errorf("_PyRuntime.debug_offsets: bad cookie %q", b[:8])
	}
	if hex := binary.LittleEndian.Uint64(b[8:]); uint32(hex)&0xffff0000 != v.hex() {
		return fmt.Errorf("_PyRuntime.debug_offsets: version %#x does not match Python %s", hex, v)
	}
	u := func(i int) uint32 { return uint32(binary.LittleEndian.Uint64(b[24+8*i:])) }
	// runtime_state: size, finalizing, interpreters_head
	o.RuntimeInterpHead = u(2)
	// interpreter_state (13 fields from index 3): size, id, next, threads_head
	o.InterpTstateHead = u(3 + 3)
	// thread_state (9 fields from 16): size, prev, next, interp, current_frame, thread_id
	ts := 16
	o.ThreadNext, o.ThreadFrame, o.ThreadID = u(ts+2), u(ts+4), u(ts+5)
	// interpreter_frame (6 from 25): size, previous, executable, instr_ptr, localsplus, owner
	fr := 25
	o.FrameBack, o.FrameCode, o.FrameInstr, o.FrameOwner = u(fr+1), u(fr+2), u(fr+3), u(fr+5)
	// code_object (10 from 31): size, filename, name, qualname, linetable, firstlineno, ..., co_code_adaptive
	co := 31
	o.CodeFilename, o.CodeName, o.CodeQualname, o.CodeLineTable, o.CodeFirstLineno, o.CodeAdaptive =
		u(co+1), u(co+2), u(co+3), u(co+4), u(co+5), u(co+9)
	return nil
}
