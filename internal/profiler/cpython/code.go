package cpython

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"unicode/utf16"

	"github.com/contprof/contprof/internal/output/profiles"
)

// Limits on what is read from a process for one code object.
const (
	maxNameLen      = 1024
	maxLineTableLen = 256 << 10
	maxCodeCache    = 16384
)

// Reader symbolizes the Python frames of one process.
type Reader struct {
	t   *Target
	mem *os.File
	gen uint64
	// code objects by address; valid while their fields match.
	codes map[uint64]*codeInfo
}

type codeInfo struct {
	sig       [6]uint64 // fields compared on revalidation
	checked   uint64    // generation of the last validation
	bad       bool      // not a code object (at the last validation)
	function  string    // module.qualname
	file      string
	firstLine int
	table     []byte
}

// NewReader opens the memory of t's process.
func NewReader(procfs string, t *Target) (*Reader, error) {
	if procfs == "" {
		procfs = "/proc"
	}
	mem, err := os.Open(fmt.Sprintf("%s/%d/mem", procfs, t.PID))
	if err != nil {
		return nil, fmt.Errorf("cpython: open memory of pid %d: %w", t.PID, err)
	}
	return &Reader{t: t, mem: mem, codes: map[uint64]*codeInfo{}}, nil
}

// Close releases the process's memory file.
func (r *Reader) Close() error { return r.mem.Close() }

// Target is the interpreter the reader reads.
func (r *Reader) Target() *Target { return r.t }

// Begin starts a drain: every code object is revalidated once before its
// cached names are used again (its memory may have been freed and reused).
func (r *Reader) Begin() {
	r.gen++
	if len(r.codes) > maxCodeCache {
		r.codes = map[uint64]*codeInfo{}
	}
}

// Frame returns the frame of code object addr executing at byte offset
// off of its bytecode (-1: unknown, the first line is shown). ok is false
// when addr does not hold a code object now.
func (r *Reader) Frame(addr uint64, off int) (profiles.Frame, bool) {
	c := r.code(addr)
	if c == nil {
		return profiles.Frame{Function: "[unknown python code]", Type: profiles.FrameCPython}, false
	}
	return profiles.Frame{
		Function: c.function,
		File:     c.file,
		Line:     int64(lineFor(r.t.Offsets.linesKind, c.table, c.firstLine, off)),
		Type:     profiles.FrameCPython,
	}, true
}

func (r *Reader) code(addr uint64) *codeInfo {
	c := r.codes[addr]
	if c != nil && c.checked == r.gen {
		if c.bad {
			return nil
		}
		return c
	}
	sig, err := r.signature(addr)
	if err != nil {
		if c == nil {
			c = &codeInfo{}
			r.codes[addr] = c
		}
		c.bad, c.checked = true, r.gen
		return nil
	}
	if c != nil && !c.bad && c.sig == sig {
		c.checked = r.gen
		return c
	}
	c, err = r.load(sig)
	if err != nil {
		c = &codeInfo{bad: true}
	}
	c.sig, c.checked = sig, r.gen
	r.codes[addr] = c
	if c.bad {
		return nil
	}
	return c
}

// signature reads the fields that identify a code object: its type,
// name, qualname, file name and line table pointers, and first line.
func (r *Reader) signature(addr uint64) ([6]uint64, error) {
	o := &r.t.Offsets
	end := max(o.CodeFilename, o.CodeName, o.CodeLineTable, o.CodeFirstLineno) + 8
	if o.CodeQualname != none {
		end = max(end, o.CodeQualname+8)
	}
	b := make([]byte, end)
	if err := r.read(addr, b); err != nil {
		return [6]uint64{}, err
	}
	u := func(off uint32) uint64 {
		if off == none {
			return 0
		}
		return binary.LittleEndian.Uint64(b[off:])
	}
	if u(objectType) != r.t.CodeType {
		return [6]uint64{}, errors.New("not a code object")
	}
	first := uint64(binary.LittleEndian.Uint32(b[o.CodeFirstLineno:]))
	return [6]uint64{addr, u(o.CodeName), u(o.CodeQualname), u(o.CodeFilename), u(o.CodeLineTable), first}, nil
}

func (r *Reader) load(sig [6]uint64) (*codeInfo, error) {
	name, err := r.str(sig[1])
	if err != nil {
		return nil, fmt.Errorf("co_name: %w", err)
	}
	if sig[2] != 0 {
		if q, err := r.str(sig[2]); err == nil && q != "" {
			name = q
		}
	}
	file, err := r.str(sig[3])
	if err != nil {
		return nil, fmt.Errorf("co_filename: %w", err)
	}
	table, _ := r.bytes(sig[4]) // without it, lines are the first line
	return &codeInfo{
		function:  qualify(file, name),
		file:      file,
		firstLine: int(int32(sig[5])),
		table:     table,
	}, nil
}

// qualify prefixes the qualified name with the module name derived from
// the file name, as Python profilers show them (module.func).
func qualify(file, name string) string {
	mod := ""
	switch {
	case strings.HasPrefix(file, "<frozen ") && strings.HasSuffix(file, ">"):
		mod = strings.TrimSuffix(strings.TrimPrefix(file, "<frozen "), ">")
	case strings.HasPrefix(file, "<"):
		return name // <string>, <stdin>: no module
	default:
		mod = strings.TrimSuffix(path.Base(file), ".py")
		if mod == "__init__" {
			mod = path.Base(path.Dir(file))
		}
	}
	if mod == "" {
		return name
	}
	return mod + "." + name
}

func (r *Reader) read(addr uint64, b []byte) error {
	if addr == 0 || addr >= 1<<63 {
		return fmt.Errorf("bad address %#x", addr)
	}
	_, err := r.mem.ReadAt(b, int64(addr))
	return err
}

// str reads a str object (compact forms: every string the compiler makes).
func (r *Reader) str(addr uint64) (string, error) {
	o := &r.t.Offsets
	var h [40]byte
	if err := r.read(addr, h[:]); err != nil {
		return "", err
	}
	n := binary.LittleEndian.Uint64(h[unicodeLength:])
	state := binary.LittleEndian.Uint32(h[unicodeState:])
	kind, compact, ascii := state>>2&7, state>>5&1 == 1, state>>6&1 == 1
	if !compact || n > maxNameLen || kind == 0 || kind == 3 || kind > 4 {
		return "", fmt.Errorf("unsupported str at %#x (state %#x, length %d)", addr, state, n)
	}
	data := addr + uint64(o.UnicodeCompactSize)
	if ascii {
		data = addr + uint64(o.UnicodeASCIISize)
	}
	b := make([]byte, n*uint64(kind))
	if err := r.read(data, b); err != nil {
		return "", err
	}
	switch kind {
	case 1:
		if ascii {
			return string(b), nil
		}
		rs := make([]rune, n)
		for i, c := range b {
			rs[i] = rune(c)
		}
		return string(rs), nil
	case 2:
		u := make([]uint16, n)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		return string(utf16.Decode(u)), nil
	default:
		rs := make([]rune, n)
		for i := range rs {
			rs[i] = rune(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return string(rs), nil
	}
}

// bytes reads a bytes object.
func (r *Reader) bytes(addr uint64) ([]byte, error) {
	o := &r.t.Offsets
	var h [8]byte
	if err := r.read(addr+uint64(o.BytesSize), h[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint64(h[:])
	if n > maxLineTableLen {
		return nil, fmt.Errorf("bytes at %#x: length %d", addr, n)
	}
	b := make([]byte, n)
	return b, r.read(addr+uint64(o.BytesData), b)
}
