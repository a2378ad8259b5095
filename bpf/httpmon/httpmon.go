//go:build linux

package httpmon

import (
	"errors"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/contprof/contprof/bpf/load"
)

// Event is one completed HTTP exchange as the program sends it.
type Event = httpmonHttpEvent

// AggKey names one series of a process in one interval (epoch) in the
// aggs map; the path is zero past PathLen.
type AggKey = httpmonAggKey

// AggKeyShort is the key of the series of paths up to ShortPathLen bytes
// (the aggs_short map): an AggKey cut after them.
type AggKeyShort = httpmonAggKeyShort

// Long is the key as an AggKey.
func (k *AggKeyShort) Long() AggKey {
	l := AggKey{Tgid: k.Tgid, Status: k.Status, Role: k.Role, Method: k.Method, PathLen: k.PathLen, Epoch: k.Epoch}
	copy(l.Path[:], k.Path[:])
	return l
}

// AggValue is what one CPU counted for a series: durations in ns, buckets
// over Config.BoundsNs (the last counts those above every bound).
type AggValue = httpmonAggValue

// NumBounds is the number of histogram bucket bounds (NBOUNDS in
// httpmon.c).
const NumBounds = 14

// EventSize is the size of an event record in the ring buffer with a path
// longer than ShortPathLen; records of shorter paths stop after
// EventHeadSize + ShortPathLen bytes.
const EventSize = 160

// EventHeadSize is the offset of the path in a record.
const EventHeadSize = 32

// ShortPathLen is the path room of the short records (PATH_SHORT in httpmon.c).
const ShortPathLen = 24

// PathLen is how many bytes of the request path an event carries at most.
const PathLen = 128

// Roles (enum role in httpmon.c).
const (
	RoleServer = 1
	RoleClient = 2
)

// Methods (enum method in httpmon.c); index into MethodNames.
const (
	MethodGet = iota + 1
	MethodPost
	MethodPut
	MethodDelete
	MethodHead
	MethodPatch
	MethodOptions
	MethodConnect
	MethodTrace
)

// MethodNames maps a method code to its name; code 0 is not sent.
var MethodNames = [...]string{"", "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "CONNECT", "TRACE"}

// Indexes of the per-CPU stats array (enum stat_index in httpmon.c).
const (
	StatExchanges = iota
	StatLost
	StatUnmatchedRequest
	StatUnmatchedResponse
	NumStats
)

// Syscalls are the system calls whose syscalls/sys_exit_<name> tracepoints
// the tracepoint program attaches to.
var Syscalls = []string{"read", "readv", "recvfrom", "recvmsg", "write", "writev", "sendto", "sendmsg", "close"}

// PIDWord returns the index of the PID filter word (a uint64) that holds
// pid's bit, and the bit.
func PIDWord(pid uint32) (index uint32, bit uint64) {
	return pid / 64, 1 << (pid % 64)
}

// Config sizes the maps and sets the PID namespace the filter compares in.
type Config struct {
	// PIDLimit is one more than the largest PID the filter can hold: the
	// filter is a bitmap of PIDLimit bits (PIDLimit/8 bytes).
	PIDLimit uint32
	// MaxConns is the capacity of the per-(process, fd) exchange table.
	MaxConns uint32
	// RingBufferBytes is the ring buffer size: a power of two multiple of
	// the page size.
	RingBufferBytes uint32
	// WakeupBytes: the reader is woken only once this much data waits
	// (0: on every event); it must then poll on a timer.
	WakeupBytes uint64
	// PIDNamespaceDev and PIDNamespaceIno identify the loader's PID
	// namespace; zero means the initial namespace (the fast path).
	PIDNamespaceDev uint64
	PIDNamespaceIno uint64
	// MaxSeries is the capacity of each in-kernel aggregation table (one
	// for short paths, one for long): the series (process, role, method,
	// status, path) of the current and the previous interval.
	MaxSeries uint32
	// BoundsNs are the histogram bucket bounds in ns, ascending.
	BoundsNs [NumBounds]uint64
	// Sock loads the socket tracepoint programs (SockPrograms; the kernel
	// must have them, see HasSockTracepoints); otherwise the system call
	// programs (Program) are loaded. Only one set is loaded: the other's
	// verification and memory are not paid.
	Sock bool
}

// Objects are the loaded programs and maps. The global variables are set
// before loading and not kept, so nothing else holds kernel objects.
type Objects struct {
	httpmonPrograms
	httpmonMaps
}

// Load loads the programs of one flavour (cfg.Sock) and the maps into the
// kernel.
func Load(cfg Config) (*Objects, error) {
	var objs Objects
	sc, sk := &syscallObjects{}, &sockObjects{}
	var into any = sc
	if cfg.Sock {
		into = sk
	}
	err := load.Generated(loadHttpmon, load.Settings{
		Entries: map[string]uint32{
			httpmonMapTargetPids:   (cfg.PIDLimit + 63) / 64,
			httpmonMapObservedPids: (cfg.PIDLimit + 63) / 64,
			httpmonMapAggs:         cfg.MaxSeries,
			httpmonMapAggsShort:    cfg.MaxSeries,
			httpmonMapConns:        cfg.MaxConns,
			httpmonMapEvents:       cfg.RingBufferBytes,
		},
		Vars: map[string]any{
			httpmonVarPidnsDev:    cfg.PIDNamespaceDev,
			httpmonVarPidnsIno:    cfg.PIDNamespaceIno,
			httpmonVarWakeupBytes: cfg.WakeupBytes,
			httpmonVarBoundsNs:    cfg.BoundsNs,
		},
	}, into, "HTTP monitor")
	if err != nil {
		return nil, err
	}
	if cfg.Sock {
		objs.SockSend, objs.SockRecv, objs.SockState, objs.httpmonMaps = sk.SockSend, sk.SockRecv, sk.SockState, sk.httpmonMaps
	} else {
		objs.SysExitIo, objs.RawSysExit, objs.httpmonMaps = sc.SysExitIo, sc.RawSysExit, sc.httpmonMaps
	}
	return &objs, nil
}

// syscallObjects are the system call flavours' programs, and the maps.
type syscallObjects struct {
	SysExitIo  *ebpf.Program `ebpf:"sys_exit_io"`
	RawSysExit *ebpf.Program `ebpf:"raw_sys_exit"`
	httpmonMaps
}

// sockObjects are the socket tracepoint flavour's programs, and the maps.
type sockObjects struct {
	SockSend  *ebpf.Program `ebpf:"sock_send"`
	SockRecv  *ebpf.Program `ebpf:"sock_recv"`
	SockState *ebpf.Program `ebpf:"sock_state"`
	httpmonMaps
}

// HasSockTracepoints reports whether the kernel has the sock_send_length and
// sock_recv_length tracepoints (BTF).
func HasSockTracepoints() bool {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return false
	}
	for _, name := range []string{"btf_trace_sock_send_length", "btf_trace_sock_recv_length", "btf_trace_inet_sock_set_state"} {
		if _, err := spec.AnyTypeByName(name); err != nil {
			return false
		}
	}
	return true
}

// Program returns the program of one system call flavour (loaded without
// Config.Sock): raw false gives the program for every
// syscalls/sys_exit_<Syscalls> tracepoint; raw true the one for the raw
// sys_exit tracepoint.
func (o *Objects) Program(raw bool) *ebpf.Program {
	if raw {
		return o.RawSysExit
	}
	return o.SysExitIo
}

// SockPrograms are the programs of the socket tracepoint flavour (loaded
// with Config.Sock), by tracepoint name (attached as tp_btf).
func (o *Objects) SockPrograms() map[string]*ebpf.Program {
	return map[string]*ebpf.Program{
		"sock_send_length":    o.SockSend,
		"sock_recv_length":    o.SockRecv,
		"inet_sock_set_state": o.SockState,
	}
}

// Close releases the programs and maps.
func (o *Objects) Close() error {
	return errors.Join(o.httpmonPrograms.Close(), o.httpmonMaps.Close())
}
