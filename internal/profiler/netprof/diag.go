//go:build linux

package netprof

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sock_diag (linux/inet_diag.h); x/sys/unix has the constants but not the
// message types.
const (
	inetDiagInfo       = 2 // INET_DIAG_INFO attribute: struct tcp_info
	sizeofInetDiagReq  = 56
	sizeofInetDiagMsg  = 72
	tcpStateListen     = 10
	tcpStateTimeWait   = 6
	tcpStateSynRecv    = 3
	tcpStateNewSynRecv = 12
	// Every state but TIME_WAIT and the request-socket states, which have
	// no inode and no tcp_info worth reading.
	diagStates = 0xfff &^ (1<<tcpStateTimeWait | 1<<tcpStateSynRecv | 1<<tcpStateNewSynRecv)
)

// endpoint is one side of a connection.
type endpoint struct {
	Addr netip.Addr // IPv4 addresses as IPv4 (unmapped)
	Port uint16
}

// connKey identifies a connection in a network namespace by its local and
// remote endpoints.
type connKey struct {
	NetNS         uint32
	Local, Remote endpoint
}

// diagSock is one TCP socket from a sock_diag dump.
type diagSock struct {
	connKey
	State uint8
	Inode uint64
	// From tcp_info; zero for listeners.
	BytesAcked    uint64
	BytesReceived uint64
	RTT           uint32 // smoothed, µs
	TotalRetrans  uint32
	HasInfo       bool
}

// diagConn is a NETLINK_SOCK_DIAG socket bound to one network namespace.
type diagConn struct {
	fd    int
	netns uint32
	seq   uint32
	buf   []byte
}

// sameNetNS reports whether the current thread's network namespace has
// the inode ino.
func currentNetNS() (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, err
	}
	return uint32(st.Ino), nil
}

// openDiag opens a sock_diag socket in the network namespace of pid (whose
// inode is netns). A netlink socket stays in the namespace it was created
// in, so the thread enters that namespace only for the socket() call; it
// runs on a goroutine of its own whose thread is discarded if switching
// back fails.
func openDiag(pid int, netns uint32) (*diagConn, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		cur, err := currentNetNS()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, fmt.Errorf("identify our network namespace: %w", err)}
			return
		}
		if cur == netns {
			fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
			runtime.UnlockOSThread()
			ch <- result{fd, err}
			return
		}
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, err}
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, err}
			return
		}
		defer unix.Close(target)
		var st unix.Stat_t
		if err := unix.Fstat(target, &st); err != nil || uint32(st.Ino) != netns {
			runtime.UnlockOSThread()
			ch <- result{-1, errors.New("process changed network namespace or exited")}
			return
		}
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, fmt.Errorf("enter network namespace: %w", err)}
			return
		}
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			// Leave the thread locked: it exits with this goroutine.
			if err == nil {
				unix.Close(fd)
			}
			ch <- result{-1, fmt.Errorf("return to our network namespace: %w", rerr)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("sock_diag socket in network namespace %d (of pid %d): %w", netns, pid, r.err)
	}
	return &diagConn{fd: r.fd, netns: netns, buf: make([]byte, 64<<10)}, nil
}

func (d *diagConn) close() error { return unix.Close(d.fd) }

// dump lists the TCP sockets of the namespace (IPv4 and IPv6), with
// tcp_info, calling fn for each.
func (d *diagConn) dump(fn func(*diagSock)) error {
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := d.dumpFamily(family, fn); err != nil {
			return err
		}
	}
	return nil
}

func (d *diagConn) dumpFamily(family uint8, fn func(*diagSock)) error {
	d.seq++
	var req [unix.SizeofNlMsghdr + sizeofInetDiagReq]byte
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], d.seq)
	r := req[unix.SizeofNlMsghdr:]
	r[0] = family
	r[1] = unix.IPPROTO_TCP
	r[2] = 1 << (inetDiagInfo - 1)
	ne.PutUint32(r[4:], diagStates)
	if err := unix.Sendto(d.fd, req[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag request: %w", err)
	}
	for {
		n, _, err := unix.Recvfrom(d.fd, d.buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("sock_diag read: %w", err)
		}
		b := d.buf[:n]
		for len(b) >= unix.SizeofNlMsghdr {
			l := int(ne.Uint32(b[0:]))
			typ := ne.Uint16(b[4:])
			seq := ne.Uint32(b[8:])
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return errors.New("sock_diag: malformed netlink message")
			}
			msg := b[unix.SizeofNlMsghdr:l]
			if al := (l + 3) &^ 3; al <= len(b) {
				b = b[al:]
			} else {
				b = nil
			}
			if seq != d.seq {
				continue // a reply to an earlier, abandoned request
			}
			switch typ {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(msg) >= 4 {
					if e := int32(ne.Uint32(msg)); e != 0 {
						return fmt.Errorf("sock_diag: %w", unix.Errno(-e))
					}
				}
				return nil
			case unix.SOCK_DIAG_BY_FAMILY:
				var s diagSock
				if parseDiagMsg(msg, d.netns, &s) {
					fn(&s)
				}
			}
		}
	}
}

// parseDiagMsg decodes struct inet_diag_msg and its INET_DIAG_INFO.
func parseDiagMsg(m []byte, netns uint32, s *diagSock) bool {
	if len(m) < sizeofInetDiagMsg {
		return false
	}
	family := m[0]
	s.State = m[1]
	s.NetNS = netns
	id := m[4:52]
	s.Local.Port = binary.BigEndian.Uint16(id[0:])
	s.Remote.Port = binary.BigEndian.Uint16(id[2:])
	s.Local.Addr = diagAddr(family, id[4:20])
	s.Remote.Addr = diagAddr(family, id[20:36])
	s.Inode = uint64(binary.NativeEndian.Uint32(m[68:]))
	attrs := m[sizeofInetDiagMsg:]
	for len(attrs) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(attrs[0:]))
		typ := binary.NativeEndian.Uint16(attrs[2:])
		if l < unix.SizeofRtAttr || l > len(attrs) {
			break
		}
		if typ == inetDiagInfo {
			var ti unix.TCPInfo
			// Older kernels send a shorter struct: the missing tail stays 0.
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&ti)), unsafe.Sizeof(ti)), attrs[unix.SizeofRtAttr:l])
			s.BytesAcked = ti.Bytes_acked
			s.BytesReceived = ti.Bytes_received
			s.RTT = ti.Rtt
			s.TotalRetrans = ti.Total_retrans
			s.HasInfo = true
		}
		al := (l + 3) &^ 3
		if al > len(attrs) {
			break
		}
		attrs = attrs[al:]
	}
	return true
}

// diagAddr returns the address, IPv4-mapped IPv6 ones unmapped so that both
// families of a dual-stack connection compare equal.
func diagAddr(family uint8, b []byte) netip.Addr {
	if family == unix.AF_INET {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16([16]byte(b[:16])).Unmap()
}

// netnsOf returns the network namespace inode of pid.
func netnsOf(pid int) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, os.ErrNotExist
		}
		return 0, err
	}
	return uint32(st.Ino), nil
}
