//go:build linux

package hotspot

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/contprof/contprof/internal/monitor/procfs"
)

// VMStructs are the field offsets a JVM publishes about itself in
// gHotSpotVMStructs (the table the serviceability agent reads), as
// "Type::_field" -> offset.
type VMStructs map[string]uint64

// ReadVMStructs reads the JVM's gHotSpotVMStructs table from its memory:
// the table's address and entry layout come from libjvm.so's dynamic
// symbols, relocated by where libjvm is mapped.
func ReadVMStructs(t *Target) (VMStructs, error) {
	base, path, err := t.libjvmBase()
	if err != nil {
		return nil, err
	}
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vmstructs: %w", err)
	}
	defer f.Close()
	want, err := dynSymbols(f, "gHotSpotVMStructs", "gHotSpotVMStructEntryArrayStride",
		"gHotSpotVMStructEntryTypeNameOffset", "gHotSpotVMStructEntryFieldNameOffset",
		"gHotSpotVMStructEntryOffsetOffset", "gHotSpotVMStructEntryIsStaticOffset")
	if err != nil {
		return nil, fmt.Errorf("vmstructs: %w", err)
	}
	mem, err := os.Open(fmt.Sprintf("%s/%d/mem", t.procfs, t.PID))
	if err != nil {
		return nil, fmt.Errorf("vmstructs: %w", err)
	}
	defer mem.Close()
	rd := memReader{mem}
	vals := map[string]uint64{}
	for name, v := range want {
		x, err := rd.u64(base + v)
		if err != nil {
			return nil, fmt.Errorf("vmstructs: read %s: %w", name, err)
		}
		vals[name] = x
	}
	table, stride := vals["gHotSpotVMStructs"], vals["gHotSpotVMStructEntryArrayStride"]
	if table == 0 || stride == 0 || stride > 256 {
		return nil, fmt.Errorf("vmstructs: implausible table %#x stride %d", table, stride)
	}
	out := VMStructs{}
	for i := uint64(0); i < 10000; i++ {
		e := table + i*stride
		typePtr, err := rd.u64(e + vals["gHotSpotVMStructEntryTypeNameOffset"])
		if err != nil {
			return nil, fmt.Errorf("vmstructs: entry %d: %w", i, err)
		}
		if typePtr == 0 {
			return out, nil
		}
		fieldPtr, err1 := rd.u64(e + vals["gHotSpotVMStructEntryFieldNameOffset"])
		static, err2 := rd.u32(e + vals["gHotSpotVMStructEntryIsStaticOffset"])
		off, err3 := rd.u64(e + vals["gHotSpotVMStructEntryOffsetOffset"])
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("vmstructs: entry %d: %w", i, err)
		}
		if static != 0 || fieldPtr == 0 {
			continue
		}
		typ, err1 := rd.cstring(typePtr)
		field, err2 := rd.cstring(fieldPtr)
		if err1 != nil || err2 != nil {
			continue
		}
		out[typ+"::"+field] = off
	}
	return nil, errors.New("vmstructs: table has no end")
}

// libjvmBase returns the load bias of libjvm.so in the JVM and a path to
// the file (through the JVM's root).
func (t *Target) libjvmBase() (uint64, string, error) {
	lines, err := procfs.ReadMaps(t.procfs, t.PID)
	if err != nil {
		return 0, "", err
	}
	for _, ml := range lines {
		if path, _ := ml.File(); ml.Offset == 0 && path == t.LibJVM {
			return ml.Start, ml.MapFile(t.procfs, t.PID), nil
		}
	}
	return 0, "", fmt.Errorf("vmstructs: %s not mapped at offset 0", t.LibJVM)
}

type memReader struct{ f *os.File }

func (r memReader) read(addr uint64, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := r.f.ReadAt(b, int64(addr)); err != nil {
		return nil, err
	}
	return b, nil
}

func (r memReader) u64(addr uint64) (uint64, error) {
	return readLE(r, addr, 8, binary.LittleEndian.Uint64)
}

func (r memReader) u32(addr uint64) (uint32, error) {
	return readLE(r, addr, 4, binary.LittleEndian.Uint32)
}

func (r memReader) cstring(addr uint64) (string, error) {
	b := make([]byte, 128)
	n, err := r.f.ReadAt(b, int64(addr))
	if n == 0 {
		return "", err
	}
	if i := strings.IndexByte(string(b[:n]), 0); i >= 0 {
		return string(b[:i]), nil
	}
	return string(b[:n]), nil
}

// CompiledFrame is the code range of one JIT-compiled method and the size
// of its frames, from which its caller's frame is found without a frame
// pointer: the return address is at SP+Size-8 and the caller's rbp at
// SP+Size-16 (valid in the method's body, after the prologue).
type CompiledFrame struct {
	Start, End uint64
	Size       uint64 // bytes
}

// Fields the frame sizes come from.
const (
	fieldCodeBegin = "CodeBlob::_code_begin"
	fieldCodeEnd   = "CodeBlob::_code_end"
	fieldFrameSize = "CodeBlob::_frame_size"
)

// maxFrameWords bounds a plausible frame (32 KiB); a larger value means
// the field found was not the blob's.
const maxFrameWords = 4096

// headerSearch bounds how far before its code a blob's header is looked
// for (the nmethod header, relocations and constants come first).
const headerSearch = 16 << 10

// CompiledFrames finds the frame size of each compiled method in code (as
// the perf map lists them: start and size of the code): the CodeBlob header
// before the code is the one whose _code_begin and _code_end fields hold
// the code's bounds, and its _frame_size (in words) is read next to them.
// Methods whose blob is not found are left out.
func CompiledFrames(t *Target, vms VMStructs, code []CompiledFrame) ([]CompiledFrame, error) {
	offBegin, ok1 := vms[fieldCodeBegin]
	offEnd, ok2 := vms[fieldCodeEnd]
	offSize, ok3 := vms[fieldFrameSize]
	if !ok1 || !ok2 || !ok3 {
		return nil, fmt.Errorf("vmstructs: this JVM does not publish %s, %s and %s", fieldCodeBegin, fieldCodeEnd, fieldFrameSize)
	}
	mem, err := os.Open(fmt.Sprintf("%s/%d/mem", t.procfs, t.PID))
	if err != nil {
		return nil, fmt.Errorf("vmstructs: %w", err)
	}
	defer mem.Close()
	rd := memReader{mem}
	var out []CompiledFrame
	buf := make([]byte, headerSearch)
	for _, c := range code {
		start := c.Start
		if start < headerSearch {
			continue
		}
		lo := start - headerSearch
		n, _ := mem.ReadAt(buf, int64(lo))
		// The field holding start, scanning back from the code.
		for p := n - 8; p >= 0; p -= 8 {
			if binary.LittleEndian.Uint64(buf[p:]) != start {
				continue
			}
			blob := lo + uint64(p) - offBegin
			end, err1 := rd.u64(blob + offEnd)
			words, err2 := rd.u32(blob + offSize)
			if err1 != nil || err2 != nil || end != c.End || words == 0 || words > maxFrameWords {
				continue
			}
			out = append(out, CompiledFrame{Start: start, End: end, Size: uint64(words) * 8})
			break
		}
	}
	return out, nil
}

func (r memReader) u16(addr uint64) (uint16, error) {
	return readLE(r, addr, 2, binary.LittleEndian.Uint16)
}

// readLE reads an n-byte little-endian integer at addr.
func readLE[T uint16 | uint32 | uint64](r memReader, addr uint64, n int, decode func([]byte) T) (T, error) {
	b, err := r.read(addr, n)
	if err != nil {
		return 0, err
	}
	return decode(b), nil
}
