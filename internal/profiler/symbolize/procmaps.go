//go:build linux

package symbolize

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// procMapping is one line of /proc/PID/maps.
type procMapping struct {
	start, end, offset uint64
	perms              string
	inode              uint64
	path               string // as the process sees it, " (deleted)" removed
	deleted            bool
}

func (m *procMapping) executable() bool { return strings.Contains(m.perms, "x") }

// fileBacked reports whether the mapping is of a regular file (not
// anonymous memory, [vdso], [stack], ...).
func (m *procMapping) fileBacked() bool {
	return m.inode != 0 && strings.HasPrefix(m.path, "/")
}

func parseProcMaps(r io.Reader) ([]procMapping, error) {
	var out []procMapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		// 55d4c7a00000-55d4c7a01000 r-xp 00001000 fe:01 1234  /usr/bin/app
		line := sc.Text()
		fields := strings.SplitN(line, " ", 6)
		if len(fields) < 5 {
			continue
		}
		addrs := strings.SplitN(fields[0], "-", 2)
		if len(addrs) != 2 {
			return nil, fmt.Errorf("maps: bad address range %q", fields[0])
		}
		start, err1 := strconv.ParseUint(addrs[0], 16, 64)
		end, err2 := strconv.ParseUint(addrs[1], 16, 64)
		off, err3 := strconv.ParseUint(fields[2], 16, 64)
		inode, err4 := strconv.ParseUint(fields[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			return nil, fmt.Errorf("maps: bad line %q", line)
		}
		m := procMapping{start: start, end: end, offset: off, perms: fields[1], inode: inode}
		if len(fields) == 6 {
			m.path = strings.TrimLeft(fields[5], " ")
		}
		if p, ok := strings.CutSuffix(m.path, " (deleted)"); ok {
			m.path, m.deleted = p, true
		}
		out = append(out, m)
	}
	return out, sc.Err()
}
