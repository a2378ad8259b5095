package cpython

// Line numbers from a code object's line table, for an instruction offset
// in bytes. Each decoder follows CPython's own for its version; they return
// the first line when the table says nothing for the offset.

// lineFor dispatches on the table format.
func lineFor(kind uint8, table []byte, firstLine int, byteOff int) int {
	if byteOff < 0 {
		return firstLine
	}
	var l int
	switch kind {
	case linesLnotab:
		l = lnotabLine(table, firstLine, byteOff)
	case linesLinetab:
		l = linetabLine(table, firstLine, byteOff)
	default:
		l = locationLine(table, firstLine, byteOff/2)
	}
	if l <= 0 {
		return firstLine
	}
	return l
}

// lnotabLine is PyCode_Addr2Line of 3.8/3.9: (address delta, signed line
// delta) byte pairs.
func lnotabLine(t []byte, line, addrq int) int {
	addr := 0
	for i := 0; i+1 < len(t); i += 2 {
		addr += int(t[i])
		if addr > addrq {
			break
		}
		line += int(int8(t[i+1]))
	}
	return line
}

// linetabLine is _PyCode_CheckLineNumber of 3.10 (PEP 626): (byte length,
// signed line delta) pairs, -128 meaning no line.
func linetabLine(t []byte, line, addrq int) int {
	end, cur := 0, -1
	for i := 0; i+1 < len(t); i += 2 {
		start := end
		end += int(t[i])
		if d := int8(t[i+1]); d == -128 {
			cur = -1
		} else {
			line += int(d)
			cur = line
		}
		if start <= addrq && addrq < end {
			return cur
		}
	}
	return -1
}

// locationLine decodes the location table of 3.11+
// (Objects/locations.md): entries of one header byte 1CCCCLLL (code,
// length-1 in code units) followed by code-specific varints.
func locationLine(t []byte, line, unitq int) int {
	pos, addr := 0, 0
	readVarint := func() int {
		if pos >= len(t) {
			return 0
		}
		b := int(t[pos])
		pos++
		v, shift := b&63, 6
		for b&64 != 0 && pos < len(t) {
			b = int(t[pos])
			pos++
			v |= (b & 63) << shift
			shift += 6
		}
		return v
	}
	readSvarint := func() int {
		v := readVarint()
		if v&1 != 0 {
			return -(v >> 1)
		}
		return v >> 1
	}
	for pos < len(t) {
		h := int(t[pos])
		pos++
		if h&0x80 == 0 {
			return -1 // out of sync
		}
		code, length := (h>>3)&15, h&7+1
		cur := line
		switch {
		case code == 15: // no location
			cur = -1
		case code == 14: // long form: line delta, end line, columns
			line += readSvarint()
			cur = line
			readVarint()
			readVarint()
			readVarint()
		case code == 13: // no column: line delta
			line += readSvarint()
			cur = line
		case code >= 10: // one line form: delta in the code, two column bytes
			line += code - 10
			cur = line
			pos += 2
		default: // short form: same line, one column byte
			pos++
		}
		if unitq < addr+length {
			return cur
		}
		addr += length
	}
	return -1
}
