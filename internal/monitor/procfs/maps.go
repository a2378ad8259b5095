package procfs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// MapsLine is one line of /proc/PID/maps.
type MapsLine struct {
	Start, End, Offset uint64
	Perms              string
	Inode              uint64
	Path               string // the fields after the inode joined by one space; "" when anonymous
}

// ParseMapsLine parses a /proc/PID/maps line such as
// "55d4c7a00000-55d4c7a01000 r-xp 00001000 fe:01 1234  /usr/bin/app";
// false when it is not one.
func ParseMapsLine(line string) (MapsLine, bool) {
	fields := strings.Fields(line)
	if len(fields) < 5 {
		return MapsLine{}, false
	}
	lo, hi, _ := strings.Cut(fields[0], "-")
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	off, err3 := strconv.ParseUint(fields[2], 16, 64)
	inode, err4 := strconv.ParseUint(fields[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return MapsLine{}, false
	}
	return MapsLine{Start: start, End: end, Offset: off, Perms: fields[1], Inode: inode, Path: strings.Join(fields[5:], " ")}, true
}

// Executable reports whether the mapping may hold code.
func (m MapsLine) Executable() bool { return strings.Contains(m.Perms, "x") }

// FileBacked reports whether the mapping is of a regular file (not
// anonymous memory, [vdso], [stack], ...).
func (m MapsLine) FileBacked() bool { return m.Inode != 0 && strings.HasPrefix(m.Path, "/") }

// File is Path without the " (deleted)" the kernel appends once the file
// was unlinked, and whether it was.
func (m MapsLine) File() (path string, deleted bool) {
	return strings.CutSuffix(m.Path, " (deleted)")
}

// MapFile is the mapping's entry under procRoot/PID/map_files: the mapped
// file itself, also when it was deleted or lives in another mount
// namespace. Its name has no leading zeros (maps lines may have them).
func (m MapsLine) MapFile(procRoot string, pid int) string {
	return fmt.Sprintf("%s/%d/map_files/%x-%x", procRoot, pid, m.Start, m.End)
}

// ParseMaps parses the text of /proc/PID/maps. Lines of fewer than five
// fields are skipped; a longer line that does not parse is an error (the
// reader is not looking at a maps file).
func ParseMaps(r io.Reader) ([]MapsLine, error) {
	var out []MapsLine
	sc := bufio.NewScanner(r)
	// Paths reach PATH_MAX (4096) and more with " (deleted)"; bufio's
	// default token limit is 64 KiB, raised for safety with odd names.
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		ml, ok := ParseMapsLine(line)
		if !ok {
			if len(strings.Fields(line)) < 5 {
				continue
			}
			return nil, fmt.Errorf("maps: bad line %q", line)
		}
		out = append(out, ml)
	}
	return out, sc.Err()
}

// ReadMaps reads and parses procRoot/PID/maps.
func ReadMaps(procRoot string, pid int) ([]MapsLine, error) {
	f, err := os.Open(procRoot + "/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseMaps(f)
}
