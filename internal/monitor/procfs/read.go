//go:build linux

package procfs

import (
	"encoding/binary"
	"errors"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// procDir reads small per-process files relative to an open /proc directory
// into one reused buffer. It builds the NUL-terminated relative path in a
// fixed array and calls openat directly because unix.Openat copies its path
// argument into a fresh allocation on every call, which at hundreds of
// processes per second is the allocation storm we want to avoid.
type procDir struct {
	fd   int
	path [96]byte
	buf  []byte
}

// maxFileSize bounds what we read from /proc/PID/environ and cmdline
// (ARG_MAX-sized at worst); the tail of a larger file is ignored.
const maxFileSize = 1 << 20

// bufKeep is the buffer size kept between reads; a buffer grown beyond it
// by a big environ is dropped afterwards so one odd process does not pin a
// megabyte for the life of the collector.
const bufKeep = 64 << 10

func openProcDir(root string) (*procDir, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &procDir{fd: fd, buf: make([]byte, 4096)}, nil
}

func (d *procDir) close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// relPath writes "<pid>/<name>\x00" (or "<name>\x00" when pid < 0) into the
// fixed array and returns a pointer to it.
func (d *procDir) relPath(pid int32, name string) *byte {
	p := d.path[:0]
	if pid >= 0 {
		p = strconv.AppendInt(p, int64(pid), 10)
		p = append(p, '/')
	}
	p = append(p, name...)
	p = append(p, 0)
	return &p[0]
}

// read returns the content of /proc/<pid>/<name> (pid < 0: /proc/<name>).
// The returned slice is only valid until the next call.
func (d *procDir) read(pid int32, name string) ([]byte, error) {
	b, _, err := d.readKeep(pid, name, false)
	return b, err
}

// readKeep is read that, when keep is set, leaves the file open and
// returns its descriptor (else -1) for later preads.
func (d *procDir) readKeep(pid int32, name string, keep bool) ([]byte, int, error) {
	fd, err := openat(d.fd, d.relPath(pid, name))
	if err != nil {
		return nil, -1, err
	}
	n := 0
	for {
		if n == len(d.buf) {
			if n >= maxFileSize {
				break
			}
			nb := make([]byte, 2*len(d.buf))
			copy(nb, d.buf[:n])
			d.buf = nb
		}
		m, err := unix.Read(fd, d.buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return nil, -1, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	if !keep {
		unix.Close(fd)
		fd = -1
	}
	return d.buf[:n], fd, nil
}

// pread re-reads a whole kept-open /proc file. Every read at offset 0
// regenerates the content. A descriptor of /proc/PID/stat stays bound to
// its process: once that process is reaped, pread fails with ESRCH even if
// the PID has been reused, so a kept descriptor also proves the identity.
func (d *procDir) pread(fd int) ([]byte, error) {
	for {
		n, err := unix.Pread(fd, d.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == len(d.buf) && n < maxFileSize {
			d.buf = make([]byte, 2*len(d.buf))
			continue
		}
		return d.buf[:n], nil
	}
}

// shrink drops an oversized buffer after a rare big read.
func (d *procDir) shrink() {
	if len(d.buf) > bufKeep {
		d.buf = make([]byte, 4096)
	}
}

// readlink returns the target of /proc/<pid>/<name>. It allocates, and is
// only used once per process identity.
func (d *procDir) readlink(pid int32, name string) (string, error) {
	var b [unix.PathMax]byte
	p := d.relPath(pid, name)
	n, _, e := syscall.Syscall6(unix.SYS_READLINKAT, uintptr(d.fd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0)
	if e != 0 {
		return "", e
	}
	return string(b[:n]), nil
}

func openat(dirfd int, path *byte) (int, error) {
	for {
		fd, _, e := syscall.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(path)),
			uintptr(unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(fd), nil
	}
}

// isGone reports errors meaning the process exited while we looked at it.
func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// isDenied reports permission errors (hidepid, ptrace access mode checks).
func isDenied(err error) bool {
	return errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)
}

// listPIDs appends the numeric entries of the /proc directory to pids,
// and their inode numbers to inos. It rewinds the long-lived directory
// descriptor instead of reopening it and parses linux_dirent64 records in
// place.
func (d *procDir) listPIDs(pids []int32, inos []uint64, dbuf []byte) ([]int32, []uint64, error) {
	if _, err := unix.Seek(d.fd, 0, 0); err != nil {
		return pids, inos, err
	}
	for {
		n, err := unix.Getdents(d.fd, dbuf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return pids, inos, err
		}
		if n <= 0 {
			return pids, inos, nil
		}
		b := dbuf[:n]
		for len(b) >= 19 {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			if pid, ok := atoiName(name); ok {
				pids = append(pids, pid)
				inos = append(inos, binary.NativeEndian.Uint64(b[0:8]))
			}
			b = b[reclen:]
		}
	}
}

// atoiName parses a NUL-terminated directory entry name made only of digits.
func atoiName(name []byte) (int32, bool) {
	var v int64
	i := 0
	for ; i < len(name) && name[i] != 0; i++ {
		c := name[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
		if v > 1<<31-1 {
			return 0, false
		}
	}
	return int32(v), i > 0
}
