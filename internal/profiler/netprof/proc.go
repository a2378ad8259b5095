//go:build linux

package netprof

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/contprof/contprof/internal/monitor/procfs"
)

// socketInode parses a /proc/PID/fd link target "socket:[12345]".
func socketInode(link string) (uint64, bool) {
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok || !strings.HasSuffix(s, "]") {
		return 0, false
	}
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 64)
	return n, err == nil
}

// fdInode returns the socket inode behind /proc/PID/fd/FD.
func fdInode(pid, fd int) (uint64, bool) {
	l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(fd))
	if err != nil {
		return 0, false
	}
	return socketInode(l)
}

// socketInodes calls fn for every socket inode among pid's open files.
func socketInodes(pid int, fn func(ino uint64)) error {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		l, err := os.Readlink(dir + n)
		if err != nil {
			continue // closed meanwhile
		}
		if ino, ok := socketInode(l); ok {
			fn(ino)
		}
	}
	return nil
}

// allPIDs lists the processes in /proc.
func allPIDs() ([]int, error) {
	f, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if p, err := strconv.Atoi(n); err == nil && p > 0 {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

// serviceName names a process the way the receiver does: OTEL_SERVICE_NAME,
// else service.name in OTEL_RESOURCE_ATTRIBUTES, else the executable's
// base name (else comm).
func serviceName(pid int) string {
	p := "/proc/" + strconv.Itoa(pid)
	if env, err := os.ReadFile(p + "/environ"); err == nil {
		var fromAttrs string
		for e := range bytes.SplitSeq(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(e, []byte("OTEL_SERVICE_NAME=")); ok {
				if s := strings.TrimSpace(string(v)); s != "" {
					return s
				}
			} else if v, ok := bytes.CutPrefix(e, []byte("OTEL_RESOURCE_ATTRIBUTES=")); ok {
				for kv := range strings.SplitSeq(string(v), ",") {
					k, val, _ := strings.Cut(kv, "=")
					if strings.TrimSpace(k) == "service.name" && strings.TrimSpace(val) != "" {
						fromAttrs = strings.TrimSpace(val)
					}
				}
			}
		}
		if fromAttrs != "" {
			return fromAttrs
		}
	}
	if exe, err := os.Readlink(p + "/exe"); err == nil && exe != "" {
		return filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
	}
	if comm, err := os.ReadFile(p + "/comm"); err == nil {
		return strings.TrimSpace(string(comm))
	}
	return ""
}

// startTicks is the start time of process pid (with the PID, its identity
// across PID reuse); "" when the process is gone.
func startTicks(pid int) string {
	st, _ := procfs.StartTime(pid)
	return st
}
