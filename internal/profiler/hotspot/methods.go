//go:build linux

package hotspot

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
)

// Methods names the Method* of a JVM (what an interpreter frame holds at
// rbp-24) by reading its metadata from the JVM's memory with the offsets
// of gHotSpotVMStructs: Method -> ConstMethod -> ConstantPool (name and
// signature symbols, holder class) -> Klass name. Names are written as
// Compiler.perfmap writes them ("void JSplit.javaAlpha(long)"), so that a
// method's interpreted and compiled frames are one function.
type Methods struct {
	mem *os.File
	off struct {
		constMethod, constants, nameIndex, sigIndex, poolHolder, klassName, symLength, symBody uint64
	}
	cpSize uint64 // sizeof(ConstantPool): the pool's entries follow it

	mu    sync.Mutex
	names map[uint64]string // by Method*; "" for what is not a method
}

// NewMethods prepares naming methods of t. Close releases it.
func NewMethods(t *Target, vms VMStructs) (*Methods, error) {
	cpSize, err := typeSize(t, "ConstantPool")
	if err != nil {
		return nil, err
	}
	m := &Methods{cpSize: cpSize, names: map[uint64]string{}}
	for _, f := range []struct {
		name string
		dst  *uint64
	}{
		{"Method::_constMethod", &m.off.constMethod},
		{"ConstMethod::_constants", &m.off.constants},
		{"ConstMethod::_name_index", &m.off.nameIndex},
		{"ConstMethod::_signature_index", &m.off.sigIndex},
		{"ConstantPool::_pool_holder", &m.off.poolHolder},
		{"Klass::_name", &m.off.klassName},
		{"Symbol::_length", &m.off.symLength},
		{"Symbol::_body", &m.off.symBody},
	} {
		v, ok := vms[f.name]
		if !ok {
			return nil, fmt.Errorf("vmstructs: this JVM does not publish %s", f.name)
		}
		*f.dst = v
	}
	if m.mem, err = os.Open(fmt.Sprintf("%s/%d/mem", t.procfs, t.PID)); err != nil {
		return nil, fmt.Errorf("vmstructs: %w", err)
	}
	return m, nil
}

// Close releases the JVM's memory.
func (m *Methods) Close() error { return m.mem.Close() }

// Name returns the name of the method at method, or false when method is
// not a readable Method*.
func (m *Methods) Name(method uint64) (string, bool) {
	if method == 0 || method&7 != 0 {
		return "", false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if n, ok := m.names[method]; ok {
		return n, n != ""
	}
	n, err := m.read(method)
	if err != nil {
		n = ""
	}
	if len(m.names) > 1<<16 {
		clear(m.names)
	}
	m.names[method] = n
	return n, n != ""
}

// Known returns the name of a method Name has resolved, without reading.
func (m *Methods) Known(method uint64) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.names[method]
	return n, ok && n != ""
}

func (m *Methods) read(method uint64) (string, error) {
	rd := memReader{m.mem}
	cm, err := rd.u64(method + m.off.constMethod)
	if err != nil || cm == 0 {
		return "", errors.New("no ConstMethod")
	}
	cp, err1 := rd.u64(cm + m.off.constants)
	ni, err2 := rd.u16(cm + m.off.nameIndex)
	si, err3 := rd.u16(cm + m.off.sigIndex)
	if err := errors.Join(err1, err2, err3); err != nil || cp == 0 {
		return "", errors.New("bad ConstMethod")
	}
	holder, err := rd.u64(cp + m.off.poolHolder)
	if err != nil || holder == 0 {
		return "", errors.New("no pool holder")
	}
	klassSym, err := rd.u64(holder + m.off.klassName)
	if err != nil {
		return "", err
	}
	symAt := func(i uint16) (string, error) {
		p, err := rd.u64(cp + m.cpSize + uint64(i)*8)
		if err != nil {
			return "", err
		}
		return m.symbol(p)
	}
	class, err1 := m.symbol(klassSym)
	name, err2 := symAt(ni)
	sig, err3 := symAt(si)
	if err := errors.Join(err1, err2, err3); err != nil {
		return "", err
	}
	return javaName(strings.ReplaceAll(class, "/", "."), name, sig)
}

// symbol reads a Symbol's UTF-8 body.
func (m *Methods) symbol(p uint64) (string, error) {
	if p == 0 {
		return "", errors.New("null symbol")
	}
	rd := memReader{m.mem}
	n, err := rd.u16(p + m.off.symLength)
	if err != nil {
		return "", err
	}
	b, err := rd.read(p+m.off.symBody, int(n))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// javaName writes a method as HotSpot's external name with signature:
// "void JSplit.javaAlpha(long)".
func javaName(class, name, sig string) (string, error) {
	params, ret, ok := strings.Cut(strings.TrimPrefix(sig, "("), ")")
	if !ok || !strings.HasPrefix(sig, "(") {
		return "", fmt.Errorf("bad signature %q", sig)
	}
	var ps []string
	for params != "" {
		t, rest, err := javaType(params)
		if err != nil {
			return "", err
		}
		ps, params = append(ps, t), rest
	}
	r, rest, err := javaType(ret)
	if err != nil || rest != "" {
		return "", fmt.Errorf("bad signature %q", sig)
	}
	return r + " " + class + "." + name + "(" + strings.Join(ps, ", ") + ")", nil
}

// primitiveTypes are the one-letter type descriptors (JVMS 4.3.2).
var primitiveTypes = map[byte]string{
	'B': "byte", 'C': "char", 'D': "double", 'F': "float", 'I': "int",
	'J': "long", 'S': "short", 'Z': "boolean", 'V': "void",
}

// javaType reads one type descriptor off the front of d.
func javaType(d string) (string, string, error) {
	if d == "" {
		return "", "", errors.New("empty descriptor")
	}
	if name, ok := primitiveTypes[d[0]]; ok {
		return name, d[1:], nil
	}
	switch d[0] {
	case 'L':
		name, rest, ok := strings.Cut(d[1:], ";")
		if !ok {
			return "", "", fmt.Errorf("bad descriptor %q", d)
		}
		return strings.ReplaceAll(name, "/", "."), rest, nil
	case '[':
		t, rest, err := javaType(d[1:])
		return t + "[]", rest, err
	}
	return "", "", fmt.Errorf("bad descriptor %q", d)
}

// typeSize reads sizeof(name) from the JVM's gHotSpotVMTypes table.
func typeSize(t *Target, name string) (uint64, error) {
	base, path, err := t.libjvmBase()
	if err != nil {
		return 0, err
	}
	f, err := elf.Open(path)
	if err != nil {
		return 0, fmt.Errorf("vmtypes: %w", err)
	}
	defer f.Close()
	syms, err := dynSymbols(f, "gHotSpotVMTypes", "gHotSpotVMTypeEntryArrayStride", "gHotSpotVMTypeEntryTypeNameOffset", "gHotSpotVMTypeEntrySizeOffset")
	if err != nil {
		return 0, err
	}
	mem, err := os.Open(fmt.Sprintf("%s/%d/mem", t.procfs, t.PID))
	if err != nil {
		return 0, fmt.Errorf("vmtypes: %w", err)
	}
	defer mem.Close()
	rd := memReader{mem}
	vals := map[string]uint64{}
	for k, v := range syms {
		if vals[k], err = rd.u64(base + v); err != nil {
			return 0, fmt.Errorf("vmtypes: read %s: %w", k, err)
		}
	}
	table, stride := vals["gHotSpotVMTypes"], vals["gHotSpotVMTypeEntryArrayStride"]
	if table == 0 || stride == 0 || stride > 256 {
		return 0, fmt.Errorf("vmtypes: implausible table %#x stride %d", table, stride)
	}
	for i := uint64(0); i < 10000; i++ {
		e := table + i*stride
		np, err := rd.u64(e + vals["gHotSpotVMTypeEntryTypeNameOffset"])
		if err != nil {
			return 0, err
		}
		if np == 0 {
			break
		}
		if n, err := rd.cstring(np); err == nil && n == name {
			return rd.u64(e + vals["gHotSpotVMTypeEntrySizeOffset"])
		}
	}
	return 0, fmt.Errorf("vmtypes: no type %s", name)
}

// dynSymbols returns the values of the named dynamic symbols of f; all must
// be there.
func dynSymbols(f *elf.File, names ...string) (map[string]uint64, error) {
	dyn, err := f.DynamicSymbols()
	if err != nil {
		return nil, fmt.Errorf("libjvm.so symbols: %w", err)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]uint64{}
	for _, s := range dyn {
		if want[s.Name] && s.Value != 0 {
			out[s.Name] = s.Value
		}
	}
	if len(out) != len(names) {
		return nil, fmt.Errorf("libjvm.so does not export %s", strings.Join(names, ", "))
	}
	return out, nil
}
