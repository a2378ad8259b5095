// Package history keeps the last minutes of every monitored process's
// per-second monitor values in memory, within a fixed bound, so that people
// can see why a policy fired (the UI's process charts) and ask what a new
// policy would have done (dry-run) without waiting for new data.
//
// The decision windows of internal/decide/window are sized by the policies'
// periods and hold only what the current policies read; this history holds
// every monitor for a fixed span, whatever the policies are. Values are kept
// as float32 change points (series.go): an idle process's constant series
// cost a few bytes; a series that keeps changing costs at most a ring of
// one float32 per second, 3.6 KB for 15 minutes.
package history

import (
	"sort"
	"time"

	"github.com/contprof/contprof/internal/control/policy"
)

// Defaults of New.
const (
	DefaultSpan         = 15 * time.Minute
	DefaultMaxProcesses = 2000
)

// Monitors lists the monitors a history records, in display order.
var Monitors = []policy.Monitor{
	policy.MonitorProcessCPU,
	policy.MonitorProcessThreadCount,
	policy.MonitorSystemLoad,
	policy.MonitorHTTPErrorRate,
	policy.MonitorHTTPAvgResponseTime,
}

// Store is the history of all processes. It is not safe for concurrent use:
// the processor calls it under its own lock.
type Store struct {
	n     int64 // seconds kept
	max   int
	procs map[string]*Proc
	hosts map[string]*series
}

// New keeps span (rounded to seconds) for at most maxProcs processes; zero
// values take the defaults.
func New(span time.Duration, maxProcs int) *Store {
	if span <= 0 {
		span = DefaultSpan
	}
	if maxProcs <= 0 {
		maxProcs = DefaultMaxProcesses
	}
	return &Store{n: int64(span / time.Second), max: maxProcs, procs: map[string]*Proc{}, hosts: map[string]*series{}}
}

// Span is how much history is kept.
func (s *Store) Span() time.Duration { return time.Duration(s.n) * time.Second }

// Proc is one process's history.
type Proc struct {
	Key   string
	Host  string
	Attrs map[string]any

	cpu, threads series
	http         *httpSeries
	newest       int64
	// gone is set when the store forgot the process (bound or prune):
	// whoever still holds it records nothing more, and its series are freed.
	gone bool
}

func (p *Proc) forget() {
	p.gone = true
	p.cpu, p.threads, p.http = series{}, series{}, nil
}

// httpSeries sums one second of HTTP requests: count, errors (status >=
// 500), and the duration sum over the requests that carried one.
type httpSeries struct {
	count, errs, sum, sumCount series
}

func (h *httpSeries) add(n, sec int64, isError bool, count, sum float64, hasSum bool) {
	h.count.add(n, sec, float32(count))
	if isError {
		h.errs.add(n, sec, float32(count))
	}
	if hasSum {
		h.sum.add(n, sec, float32(sum))
		h.sumCount.add(n, sec, float32(count))
	}
}

// value is the error rate (percent) or the mean response time (ms) of
// second sec, the units the policies use.
func (h *httpSeries) value(n int64, m policy.Monitor, sec int64) (float64, bool) {
	if h == nil {
		return 0, false
	}
	count, ok := h.count.get(n, sec)
	if !ok || count <= 0 {
		return 0, false
	}
	switch m {
	case policy.MonitorHTTPErrorRate:
		errs, _ := h.errs.get(n, sec)
		return 100 * errs / count, true
	case policy.MonitorHTTPAvgResponseTime:
		sc, ok := h.sumCount.get(n, sec)
		if !ok || sc <= 0 {
			return 0, false
		}
		sum, _ := h.sum.get(n, sec)
		return sum / sc * 1000, true
	}
	return 0, false
}

// Track returns the history of the process with key, creating it (and
// evicting the process with the oldest data when the bound is reached).
// attrs refresh the kept resource attributes.
func (s *Store) Track(key, host string, attrs map[string]any) *Proc {
	p := s.procs[key]
	if p == nil {
		if len(s.procs) >= s.max {
			s.evictOldest()
		}
		p = &Proc{Key: key, Host: host}
		s.procs[key] = p
	}
	p.Attrs = attrs
	return p
}

func (s *Store) evictOldest() {
	var victim *Proc
	for _, p := range s.procs {
		if victim == nil || p.newest < victim.newest {
			victim = p
		}
	}
	if victim != nil {
		victim.forget()
		delete(s.procs, victim.Key)
	}
	// Hosts without processes go with their last process.
	used := map[string]bool{}
	for _, p := range s.procs {
		used[p.Host] = true
	}
	for h := range s.hosts {
		if !used[h] {
			delete(s.hosts, h)
		}
	}
}

// SetScalar records process_cpu (percent) or process_thread_count.
func (s *Store) SetScalar(p *Proc, m policy.Monitor, sec int64, v float64) {
	if p == nil || p.gone || sec <= 0 {
		return
	}
	var r *series
	switch m {
	case policy.MonitorProcessCPU:
		r = &p.cpu
	case policy.MonitorProcessThreadCount:
		r = &p.threads
	default:
		return
	}
	r.set(s.n, sec, float32(v))
	p.newest = max(p.newest, sec)
}

// SetHostLoad records a host's 1-minute load average (system_load).
func (s *Store) SetHostLoad(host string, sec int64, v float64) {
	if sec <= 0 {
		return
	}
	r := s.hosts[host]
	if r == nil {
		if len(s.hosts) >= s.max {
			return
		}
		r = &series{}
		s.hosts[host] = r
	}
	r.set(s.n, sec, float32(v))
}

// AddHTTP adds count requests that completed in second sec, whatever their
// path (the history does not keep paths: see DryRun).
func (s *Store) AddHTTP(p *Proc, sec int64, isError bool, count, sum float64, hasSum bool) {
	if p == nil || p.gone || sec <= 0 || count <= 0 {
		return
	}
	if p.http == nil {
		p.http = &httpSeries{}
	}
	p.http.add(s.n, sec, isError, count, sum, hasSum)
	p.newest = max(p.newest, sec)
}

// value is monitor m of process p at second sec.
func (s *Store) value(p *Proc, m policy.Monitor, sec int64) (float64, bool) {
	switch m {
	case policy.MonitorProcessCPU:
		return p.cpu.get(s.n, sec)
	case policy.MonitorProcessThreadCount:
		return p.threads.get(s.n, sec)
	case policy.MonitorSystemLoad:
		return s.hosts[p.Host].get(s.n, sec)
	case policy.MonitorHTTPErrorRate, policy.MonitorHTTPAvgResponseTime:
		return p.http.value(s.n, m, sec)
	}
	return 0, false
}

// Series is one monitor's values, one per second from Start; nil entries
// are seconds without data.
type Series struct {
	Monitor policy.Monitor `json:"monitor"`
	Values  []*float64     `json:"values"`
}

// Window is the history of one process from Start (inclusive, unix
// seconds) to End (inclusive).
type Window struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Series []Series  `json:"series"`
}

// Get returns the kept seconds of the process ending at now (only the
// monitors that have data in them), or false for an unknown process.
func (s *Store) Get(key string, now time.Time) (Window, bool) {
	p := s.procs[key]
	if p == nil {
		return Window{}, false
	}
	end := now.Unix()
	start := end - s.n + 1
	w := Window{Start: time.Unix(start, 0), End: time.Unix(end, 0)}
	for _, m := range Monitors {
		vals := make([]*float64, 0, s.n)
		any := false
		for sec := start; sec <= end; sec++ {
			if v, ok := s.value(p, m, sec); ok {
				vals = append(vals, &v)
				any = true
			} else {
				vals = append(vals, nil)
			}
		}
		if any {
			w.Series = append(w.Series, Series{Monitor: m, Values: vals})
		}
	}
	return w, true
}

// Keys lists the processes with history, sorted.
func (s *Store) Keys() []string {
	out := make([]string, 0, len(s.procs))
	for k := range s.procs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Prune forgets processes without data in the kept span.
func (s *Store) Prune(now time.Time) {
	oldest := now.Unix() - s.n
	for k, p := range s.procs {
		if p.newest <= oldest {
			p.forget()
			delete(s.procs, k)
		}
	}
	for h, r := range s.hosts {
		if r.newest <= oldest {
			delete(s.hosts, h)
		}
	}
}
