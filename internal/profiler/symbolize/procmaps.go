//go:build linux

package symbolize

import (
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
	lines, err := procfs.ParseMaps(r)
	if err != nil {
		return nil, err
	}
	return procMappings(lines), nil
}

func procMappings(lines []procfs.MapsLine) []procMapping {
	out := make([]procMapping, len(lines))
	for i, ml := range lines {
		path, deleted := ml.File()
		out[i] = procMapping{start: ml.Start, end: ml.End, offset: ml.Offset, perms: ml.Perms, inode: ml.Inode, path: path, deleted: deleted}
	}
	return out
}
