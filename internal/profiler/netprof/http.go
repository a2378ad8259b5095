//go:build linux

package netprof

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/contprof/contprof/internal/output/histogram"
)

// Role says which side of an HTTP exchange the observed process was; the
// codes are those of bpf/httpmon.
type Role uint8

const (
	RoleServer Role = 1 // the process answered the request
	RoleClient Role = 2 // the process sent the request
)

func (r Role) String() string {
	switch r {
	case RoleServer:
		return "server"
	case RoleClient:
		return "client"
	}
	return "unknown"
}

// Exchange is one completed HTTP request/response on a socket of a covered
// process, as the HTTP monitor reports it.
type Exchange struct {
	PID, FD  int
	Role     Role
	Method   string // "GET"…; anything else is reported as "_OTHER"
	Status   int
	Start    time.Time
	Duration time.Duration
	// Path is the request path (query string removed by the caller or
	// here); it appears only in sampled logs, never as a metric attribute.
	Path string
	// Inode is the socket's inode when the source knows it; otherwise the
	// socket is found through /proc/PID/fd/FD when the exchange is
	// observed (which fails once the process closed the connection).
	Inode uint64
}

// durationBounds are the semantic conventions' advised bucket bounds for
// HTTP request durations, in seconds.
var durationBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// connDurationBounds are bucket bounds for connection lifetimes, seconds.
var connDurationBounds = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600}

type pidFD struct{ pid, fd int }

type fdEntry struct {
	ino uint64
	at  time.Time
}

type httpKey struct {
	pid    int
	ino    uint64
	role   Role
	method string
	status int
}

type pendingLog struct {
	ex  Exchange
	ino uint64
	at  time.Time // when observed
}

var knownMethods = map[string]bool{
	"GET": true, "POST": true, "PUT": true, "DELETE": true, "HEAD": true,
	"PATCH": true, "OPTIONS": true, "CONNECT": true, "TRACE": true,
}

// ObserveHTTP accounts one completed exchange: into the per-peer duration
// histograms, and, when it failed (status ≥ 500) or was slow, into the
// sampled logs as far as the task's rate limit allows. Exchanges of
// processes the task does not cover are ignored.
func (t *Task) ObserveHTTP(ex Exchange) {
	now := time.Now()
	h := &t.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.pids[ex.PID] || (ex.Role != RoleServer && ex.Role != RoleClient) {
		h.ignored++
		return
	}
	if !knownMethods[ex.Method] {
		ex.Method = "_OTHER"
	}
	ino := ex.Inode
	if ino == 0 {
		k := pidFD{ex.PID, ex.FD}
		if e, ok := h.fdCache[k]; ok && now.Sub(e.at) < t.opts.FDCacheTTL {
			ino = e.ino
		} else if i, ok := fdInode(ex.PID, ex.FD); ok {
			ino = i
			if len(h.fdCache) >= 1<<16 {
				clear(h.fdCache)
			}
			h.fdCache[k] = fdEntry{ino: i, at: now}
		}
	}
	h.exchanges++
	hk := httpKey{pid: ex.PID, ino: ino, role: ex.Role, method: ex.Method, status: ex.Status}
	hist := h.series[hk]
	if hist == nil {
		if len(h.series) >= t.opts.MaxHTTPSeries {
			h.ignored++
		} else {
			hist = histogram.New(durationBounds)
			h.series[hk] = hist
		}
	}
	if hist != nil {
		hist.Record(ex.Duration.Seconds())
	}
	failed := ex.Status >= 500
	slow := t.opts.SlowThreshold > 0 && ex.Duration >= t.opts.SlowThreshold
	if !failed && !slow {
		return
	}
	if !h.limiter.AllowN(now, 1) {
		h.rateLimited++
		return
	}
	h.sampled++
	h.pending = append(h.pending, pendingLog{ex: ex, ino: ino, at: now})
}

// httpState is what ObserveHTTP touches, under a lock of its own so that
// the HTTP monitor never waits for a Collect's /proc and sock_diag work.
type httpState struct {
	mu      sync.Mutex
	pids    map[int]bool // covered, a copy of Task.pids
	series  map[httpKey]*histogram.Histogram
	pending []pendingLog
	fdCache map[pidFD]fdEntry
	limiter *rate.Limiter

	exchanges, ignored, sampled, rateLimited uint64
}

// take returns the interval's series and logs and starts a new interval.
func (h *httpState) take() (map[httpKey]*histogram.Histogram, []pendingLog) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, p := h.series, h.pending
	h.series, h.pending = map[httpKey]*histogram.Histogram{}, nil
	return s, p
}

// syncHTTPPIDs copies the covered processes for ObserveHTTP; t.mu is held.
func (t *Task) syncHTTPPIDs() {
	t.h.mu.Lock()
	defer t.h.mu.Unlock()
	clear(t.h.pids)
	if t.closed {
		return
	}
	for p := range t.pids {
		t.h.pids[p] = true
	}
}
