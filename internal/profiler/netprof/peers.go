//go:build linux

package netprof

import (
	"time"

	"github.com/contprof/contprof/bpf/tcpevents"
)

// Process topology: the peer of a connection is on this host when a socket
// with the reversed endpoints exists in some network namespace of the
// host; its owner is found through /proc/PID/fd. Each connection is looked
// up at most maxPeerAttempts times (its peer socket may appear a moment
// later), and namespaces other than the covered ones are dumped at most
// once per Collect, only when some connection still needs them.

const maxPeerAttempts = 2

// resolvePeers fills peerPID for the connections that need it.
func (t *Task) resolvePeers() {
	var todo []*conn
	for _, c := range t.conns {
		if c.gen == t.gen && c.peerPID == 0 && c.peerAttempts < maxPeerAttempts {
			todo = append(todo, c)
		}
	}
	for _, c := range t.closedNow {
		if c.peerPID == 0 && c.peerAttempts == 0 {
			todo = append(todo, c)
		}
	}
	if len(todo) == 0 {
		return
	}
	r := peerResolver{t: t}
	if len(t.ownerCache) > 256 {
		clear(t.ownerCache)
	}
	var other []*conn
	for _, c := range todo {
		c.peerAttempts++
		if ns, ino, ok := t.findCovered(c); ok {
			c.peerPID = r.ownerOf(ns, ino)
		} else if p, ok := t.peerCache[connKey{NetNS: c.NetNS, Remote: c.Remote}]; ok && c.role == tcpevents.RoleClient && startTicks(p) != "" {
			c.peerPID = p
		} else {
			other = append(other, c)
		}
	}
	if len(other) > 0 {
		r.searchOtherNamespaces(other)
	}
	for _, c := range todo {
		if c.peerPID != 0 && c.role == tcpevents.RoleClient {
			// A client's peer endpoint is a server: remember it for the
			// short connections that close before a refresh sees them.
			t.peerCache[connKey{NetNS: c.NetNS, Remote: c.Remote}] = c.peerPID
		}
	}
	if len(t.peerCache) > 4096 {
		clear(t.peerCache)
	}
}

// findCovered looks for the peer socket of c in the covered namespaces,
// its own first.
func (t *Task) findCovered(c *conn) (netns uint32, ino uint64, ok bool) {
	rev := connKey{NetNS: c.NetNS, Local: c.Remote, Remote: c.Local}
	if ino, ok := t.index[rev]; ok {
		return c.NetNS, ino, true
	}
	if c.Remote.Addr.IsLoopback() {
		return 0, 0, false // loopback never leaves its namespace
	}
	for ns := range t.diag {
		rev.NetNS = ns
		if ino, ok := t.index[rev]; ok {
			return ns, ino, true
		}
	}
	return 0, 0, false
}

type peerResolver struct {
	t     *Task
	procs map[uint32][]int // netns → pids, once enumerated
}

// ownerScanInterval bounds how often the sockets of every process of a
// namespace are listed to find peer owners: connections whose peer
// appeared since are resolved at a later Collect (or not at all).
const ownerScanInterval = 5 * time.Second

type ownerIndex struct {
	at     time.Time
	owners map[uint64]int // socket inode → pid
}

// ownerOf finds the process holding socket inode ino of namespace netns.
func (r *peerResolver) ownerOf(netns uint32, ino uint64) int {
	if p, ok := r.t.owner[ino]; ok {
		return p
	}
	idx := r.t.ownerCache[netns]
	if idx != nil {
		if p, ok := idx.owners[ino]; ok {
			return p
		}
		if time.Since(idx.at) < ownerScanInterval {
			return 0
		}
	}
	idx = &ownerIndex{at: time.Now(), owners: map[uint64]int{}}
	for _, p := range r.pidsIn(netns) {
		_ = socketInodes(p, func(i uint64) { idx.owners[i] = p })
	}
	r.t.ownerCache[netns] = idx
	return idx.owners[ino]
}

// pidsIn lists the processes of a network namespace (all of them are
// enumerated once).
func (r *peerResolver) pidsIn(netns uint32) []int {
	if r.procs == nil {
		r.procs = map[uint32][]int{}
		pids, _ := allPIDs()
		for _, p := range pids {
			if ns, err := netnsOf(p); err == nil {
				r.procs[ns] = append(r.procs[ns], p)
			}
		}
	}
	return r.procs[netns]
}

// searchOtherNamespaces looks for the reversed endpoints of conns in every
// network namespace of the host that the task does not cover.
func (r *peerResolver) searchOtherNamespaces(conns []*conn) {
	want := map[connKey][]*conn{} // reversed endpoints, without netns
	for _, c := range conns {
		if c.Remote.Addr.IsLoopback() {
			continue
		}
		k := connKey{Local: c.Remote, Remote: c.Local}
		want[k] = append(want[k], c)
	}
	r.pidsIn(0)
	for ns, pids := range r.procs {
		if len(want) == 0 {
			return
		}
		if _, covered := r.t.diag[ns]; covered || len(pids) == 0 {
			continue
		}
		d, err := openDiag(pids[0], ns)
		if err != nil {
			continue
		}
		found := map[connKey]uint64{}
		_ = d.dump(func(s *diagSock) {
			k := connKey{Local: s.Local, Remote: s.Remote}
			if _, ok := want[k]; ok && s.State != tcpStateListen {
				found[k] = s.Inode
			}
		})
		d.close()
		for k, ino := range found {
			p := r.ownerOf(ns, ino)
			for _, c := range want[k] {
				c.peerPID = p
			}
			delete(want, k)
		}
	}
}

// serviceOf returns the service.name of a peer process, cached per pid
// for the task's life (a pid reused meanwhile keeps the old name until
// the cache is cleared, which bounds it).
func (t *Task) serviceOf(pid int) string {
	if s, ok := t.services[pid]; ok {
		return s
	}
	if len(t.services) > 4096 {
		clear(t.services)
	}
	s := t.opts.PeerService(pid)
	t.services[pid] = s
	return s
}
