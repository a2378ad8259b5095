//go:build linux

package tcpevents

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/contprof/contprof/bpf/load"
)

// Event is one open or close of a tracked connection (struct event).
type Event = tcpeventsEvent

// Tuple identifies a connection from its local socket (struct tuple):
// IPv6 or IPv4-mapped addresses in network byte order, ports in host order,
// and the network namespace inode.
type Tuple = tcpeventsTuple

// ListenKey is a listening port of a target process (struct listen_key).
type ListenKey = tcpeventsListenKey

// EventSize is the size of an event record in the ring buffer.
const EventSize = 104

// Event must have the C layout: readers copy records into it directly.
var (
	_ [EventSize - unsafe.Sizeof(Event{})]byte
	_ [unsafe.Sizeof(Event{}) - EventSize]byte
)

// Event kinds (enum event_kind).
const (
	KindOpen  = 1
	KindClose = 2
)

// Roles (enum role).
const (
	RoleUnknown = 0
	RoleClient  = 1
	RoleServer  = 2
)

// Indexes of the per-CPU stats array (enum stat_index).
const (
	StatOpens = iota
	StatCloses
	StatEventsLost
	StatFlowsFull
	StatRetransmits
	NumStats
)

// Config sizes the maps and sets the PID namespace the filter compares in.
type Config struct {
	MaxPIDs        uint32 // target_pids capacity
	MaxListenPorts uint32 // listen_ports capacity
	MaxFlows       uint32 // tracked connections
	MaxRetrans     uint32 // retransmit counters (LRU)
	// RingBufferBytes is the event ring size: a power of two multiple of
	// the page size.
	RingBufferBytes uint32
	// WakeupBytes: the reader is woken only once this much data waits
	// (0: on every event); it must then poll on a timer.
	WakeupBytes uint64
	// PIDNamespaceDev and PIDNamespaceIno identify the loader's PID
	// namespace; zero means the initial namespace.
	PIDNamespaceDev uint64
	PIDNamespaceIno uint64
}

// Objects are the loaded programs and maps.
type Objects struct {
	tcpeventsObjects
}

// Load loads the programs and maps into the kernel (not attached).
func Load(cfg Config) (*Objects, error) {
	return load.New[Objects](loadTcpevents, load.Settings{
		Entries: map[string]uint32{
			tcpeventsMapTargetPids:  cfg.MaxPIDs,
			tcpeventsMapListenPorts: cfg.MaxListenPorts,
			tcpeventsMapFlows:       cfg.MaxFlows,
			tcpeventsMapRetrans:     cfg.MaxRetrans,
			tcpeventsMapEvents:      cfg.RingBufferBytes,
		},
		Vars: map[string]any{
			tcpeventsVarPidnsDev:    cfg.PIDNamespaceDev,
			tcpeventsVarPidnsIno:    cfg.PIDNamespaceIno,
			tcpeventsVarWakeupBytes: cfg.WakeupBytes,
		},
	}, "TCP events program")
}

// Attachment flavours.
const (
	// AttachAuto tries AttachTracepoint, then AttachBTF.
	AttachAuto = ""
	// AttachTracepoint uses the classic tracepoints (needs tracefs).
	AttachTracepoint = "tracepoint"
	// AttachBTF uses BTF raw tracepoints (tp_btf) on the same events.
	AttachBTF = "tp_btf"
)

// Attach attaches both programs in the given flavour and returns the links
// and the flavour used. The caller closes the links (before Objects.Close).
func (o *Objects) Attach(flavour string) ([]link.Link, string, error) {
	switch flavour {
	case AttachTracepoint:
		l, err := o.attachTracepoints()
		return l, flavour, err
	case AttachBTF:
		l, err := o.attachBTF()
		return l, flavour, err
	case AttachAuto:
		l, err := o.attachTracepoints()
		if err == nil {
			return l, AttachTracepoint, nil
		}
		l, err2 := o.attachBTF()
		if err2 == nil {
			return l, AttachBTF, nil
		}
		return nil, "", errors.Join(err, err2)
	}
	return nil, "", fmt.Errorf("attach: %q is not one of %q, %q, %q", flavour, AttachAuto, AttachTracepoint, AttachBTF)
}

func (o *Objects) attachTracepoints() ([]link.Link, error) {
	var links []link.Link
	for _, a := range []struct {
		group, name string
		prog        *ebpf.Program
	}{
		{"sock", "inet_sock_set_state", o.TcpSetState},
		{"tcp", "tcp_retransmit_skb", o.TcpRetransmit},
	} {
		l, err := link.Tracepoint(a.group, a.name, a.prog, nil)
		if err != nil {
			closeAll(links)
			return nil, fmt.Errorf("attach tracepoint %s/%s: %w", a.group, a.name, err)
		}
		links = append(links, l)
	}
	return links, nil
}

func (o *Objects) attachBTF() ([]link.Link, error) {
	var links []link.Link
	for _, a := range []struct {
		name string
		prog *ebpf.Program
	}{
		{"inet_sock_set_state", o.BtfSetState},
		{"tcp_retransmit_skb", o.BtfRetransmit},
	} {
		l, err := link.AttachTracing(link.TracingOptions{Program: a.prog})
		if err != nil {
			closeAll(links)
			return nil, fmt.Errorf("attach tp_btf/%s: %w", a.name, err)
		}
		links = append(links, l)
	}
	return links, nil
}

func closeAll(links []link.Link) {
	for _, l := range links {
		l.Close()
	}
}

// Close releases the programs and maps.
func (o *Objects) Close() error {
	return o.tcpeventsObjects.Close()
}
