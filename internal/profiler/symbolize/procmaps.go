//go:build linux

package symbolize

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/contprof/contprof/internal/monitor/procfs"
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
		line := sc.Text()
		ml, ok := procfs.ParseMapsLine(line)
		if !ok {
			if len(strings.Fields(line)) < 5 {
				continue
			}
			return nil, fmt.Errorf("maps: bad line %q", line)
		}
		m := procMapping{start: ml.Start, end: ml.End, offset: ml.Offset, perms: ml.Perms, inode: ml.Inode, path: ml.Path}
		if p, ok := strings.CutSuffix(m.path, " (deleted)"); ok {
			m.path, m.deleted = p, true
		}
		out = append(out, m)
	}
	return out, sc.Err()
}
