// Package window keeps per-process, per-second sliding windows of the
// monitored signals and judges policy items on them. It knows nothing of the
// collector: the processor feeds it values already in policy units (percent,
// threads, load, milliseconds) and turns its triggers into task requests.
//
// Semantics (docs/design.md, "Window semantics"):
//   - one slot per second, stamped by the data point time (unix seconds);
//     a second without data never counts as crossing;
//   - an item looks at its own period, the Period seconds ending at the second
//     being judged;
//   - a window is sized by the largest period that uses it plus Slack, and is
//     resized in place (keeping its data) when policies change;
//   - a point lands in its own slot if it is still inside the window; older
//     points are dropped;
//   - a process is host + pid + start time, so PID reuse never mixes windows.
//
// A second is complete, and judged, once the process has data for a later
// second, or once the wall clock has passed its end by CompletionDelay (but
// never beyond the newest second with data: seconds after it hold nothing).
// With EndBatch, a second is also complete as soon as the batch that carried
// the process's data for it has been ingested (a source that sends all of a
// process's points of a second together); a process whose points for such a
// second keep arriving in a later batch is a source that splits seconds: its
// seconds from that point on are judged again, and from then on only by the
// rules above.
// Each complete second is judged once, in order, so a sustained crossing fires
// at exactly the count-th crossing second. Points that arrive for a second
// already judged still land in their slot and count in later judgements.
package window

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/decide/history"
)

// Key identifies a process.
type Key struct {
	Host string
	PID  int64
	// Start is the process start time in unix nanoseconds, 0 when unknown.
	Start int64
}

// String matches control.Process.Key.
func (k Key) String() string {
	return k.Host + "/" + strconv.FormatInt(k.PID, 10) + "/" + strconv.FormatInt(k.Start, 10)
}

// Options tune an Engine. Zero values take the defaults.
type Options struct {
	// IdleTimeout drops a process (and a host) without data for this long.
	IdleTimeout time.Duration
	// MaxProcesses bounds how many processes are tracked.
	MaxProcesses int
	// CompletionDelay is how long after its end the wall clock completes a
	// second for which no later data has arrived.
	CompletionDelay time.Duration
	// RefusedBackoff is how long a refused request (without a silence end)
	// waits before the same policy may request for the same subject again.
	RefusedBackoff time.Duration
	// GroupKey names the service instance of a process, which is what a
	// network task covers. Defaults to the process key.
	GroupKey func(k Key, attrs map[string]any) string
	// OnLimit is called once each time MaxProcesses is reached.
	OnLimit func(max int)
	// History, when set, also records every per-second value it is given,
	// for every monitor whatever the policies read (the UI's charts and
	// dry-run).
	History *history.Store
}

const (
	DefaultIdleTimeout     = 2 * time.Minute
	DefaultMaxProcesses    = 10000
	DefaultCompletionDelay = 2 * time.Second
	DefaultRefusedBackoff  = 30 * time.Second
	// maxSeriesPerProcess bounds the cumulative-histogram state of a process.
	maxSeriesPerProcess = 4096
	// maxURICache bounds the per-filter cache of path match results.
	maxURICache = 1024
)

type kind uint8

const (
	kCPU kind = iota
	kThreads
	kLoad
	kErrorRate
	kAvgRT
	numKinds
)

var kindMonitor = [numKinds]policy.Monitor{
	policy.MonitorProcessCPU, policy.MonitorProcessThreadCount, policy.MonitorSystemLoad,
	policy.MonitorHTTPErrorRate, policy.MonitorHTTPAvgResponseTime,
}

func kindOf(m policy.Monitor) (kind, bool) {
	for k, km := range kindMonitor {
		if km == m {
			return kind(k), true
		}
	}
	return 0, false
}

// cpolicy is the engine's own copy of a policy, with its items' signals.
type cpolicy struct {
	p     policy.Policy
	items []citem
}

type citem struct {
	index int
	it    *policy.Item
	kind  kind
	// filter names the URI filter of HTTP items ("" = all paths).
	filter string
	// re is the uri_regex, compiled once per policy set: an item that was
	// not validated would compile it on every MatchURI call.
	re *regexp.Regexp
}

// Engine holds the windows of every tracked process. It is not safe for
// concurrent use; the processor serialises calls.
type Engine struct {
	opt      Options
	pols     []cpolicy
	loadSize int // slots of host load windows, 0 when no policy reads system_load

	procs    []*Proc
	byKey    map[Key]*Proc
	hosts    map[string]*host
	suppress map[supKey]time.Time
	touched  []*Proc
	limited  bool

	windows     int
	evaluations uint64
	dropped     uint64
}

type supKey struct{ policy, subject string }

type host struct {
	name   string
	load   *ring[float64]
	latest scalar
	procs  int
	seen   time.Time
}

type scalar struct {
	sec int64
	v   float64
}

// New returns an engine with no policies.
func New(opt Options) *Engine {
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = DefaultIdleTimeout
	}
	if opt.MaxProcesses <= 0 {
		opt.MaxProcesses = DefaultMaxProcesses
	}
	if opt.CompletionDelay < 0 {
		opt.CompletionDelay = 0
	}
	if opt.RefusedBackoff <= 0 {
		opt.RefusedBackoff = DefaultRefusedBackoff
	}
	return &Engine{
		opt:      opt,
		byKey:    make(map[Key]*Proc),
		hosts:    make(map[string]*host),
		suppress: make(map[supKey]time.Time),
	}
}

func filterKey(it *policy.Item) string {
	switch {
	case len(it.URIList) > 0:
		return "list:" + strings.Join(it.URIList, "\x00")
	case it.URIRegex != "":
		return "re:" + it.URIRegex
	}
	return ""
}

// SetPolicies replaces the policies. Matching is recomputed for every process
// and windows are resized in place, keeping their data.
func (e *Engine) SetPolicies(ps []policy.Policy) {
	pols := make([]cpolicy, 0, len(ps))
	loadPeriod := 0
	for _, p := range ps {
		cp := cpolicy{p: p}
		cp.p.Items = append([]policy.Item(nil), p.Items...)
		for i := range cp.p.Items {
			it := &cp.p.Items[i]
			k, ok := kindOf(it.Monitor)
			if !ok || it.Period <= 0 || it.Count <= 0 {
				continue // the extension validates; never judge what we cannot read
			}
			ci := citem{index: i, it: it, kind: k}
			if k == kErrorRate || k == kAvgRT {
				ci.filter = filterKey(it)
				if len(it.URIList) == 0 && it.URIRegex != "" {
					re, err := regexp.Compile(it.URIRegex)
					if err != nil {
						re = neverMatch // the extension refuses such policies; count nothing
					}
					ci.re = re
				}
			}
			if k == kLoad {
				loadPeriod = max(loadPeriod, it.Period)
			}
			cp.items = append(cp.items, ci)
		}
		pols = append(pols, cp)
	}
	e.pols = pols
	e.loadSize = 0
	if loadPeriod > 0 {
		e.loadSize = loadPeriod + Slack
	}
	for _, h := range e.hosts {
		e.sizeHost(h)
	}
	for _, p := range e.procs {
		e.match(p)
	}
}

func (e *Engine) sizeHost(h *host) {
	switch {
	case e.loadSize == 0 && h.load != nil:
		h.load = nil
		e.windows--
	case e.loadSize > 0 && h.load == nil:
		h.load = newRing[float64](e.loadSize)
		e.windows++
	case e.loadSize > 0:
		h.load.resize(e.loadSize)
	}
}

// Proc is one tracked process.
type Proc struct {
	key    Key
	keyStr string
	attrs  map[string]any
	group  string
	host   *host
	idx    int

	pols  []int    // indices of matching policies
	rules [][]rule // per matching policy, its items

	cpu, threads *ring[float64]
	http         []*httpWin
	latest       [2]scalar // cpu, threads
	httpLatest   struct {
		sec int64
		agg httpAgg
	}
	cum map[uint64]cumState
	// hist is the process's history when Options.History is set.
	hist *history.Proc

	newest    int64 // newest second with data
	evaluated int64 // newest second judged
	// batchNewest is the newest second with data in the current batch;
	// batchUntil the newest second EndBatch completed before later data
	// did. split marks a source that sends a second across batches.
	batchNewest, batchUntil int64
	split                   bool
	seen                    time.Time
	touched                 bool
}

type rule struct {
	it   *citem
	sc   *ring[float64]
	hw   *httpWin
	kind kind
	// running count of the last judgement, valid while the ring's gen is
	// unchanged
	last int64
	n    int
	gen  uint64
}

type httpWin struct {
	filter string
	item   *citem // any item using the filter
	cache  map[string]bool
	r      *ring[httpAgg]
}

func (w *httpWin) matches(path string) bool {
	if w.filter == "" {
		return true
	}
	if m, ok := w.cache[path]; ok {
		return m
	}
	var m bool
	if w.item.re != nil {
		m = w.item.re.MatchString(path)
	} else {
		m = w.item.it.MatchURI(path)
	}
	if len(w.cache) < maxURICache {
		w.cache[path] = m
	}
	return m
}

var neverMatch = regexp.MustCompile(`$.^`)

type cumState struct {
	start, ts int64
	count     uint64
	sum       float64
}

// Get returns the tracked process, marking it seen at now, or nil.
func (e *Engine) Get(k Key, now time.Time) *Proc {
	p := e.byKey[k]
	if p != nil {
		p.seen = now
		if !p.touched {
			p.touched = true
			e.touched = append(e.touched, p)
		}
	}
	return p
}

// Put tracks the process with these resource attributes (or refreshes the
// attributes of a tracked one, recomputing which policies match). It returns
// nil when MaxProcesses processes are already tracked.
func (e *Engine) Put(k Key, attrs map[string]any, now time.Time) *Proc {
	if p := e.byKey[k]; p != nil {
		p.attrs = attrs
		p.group = e.groupKey(k, attrs)
		e.track(p)
		e.match(p)
		return e.Get(k, now)
	}
	if len(e.procs) >= e.opt.MaxProcesses {
		if !e.limited {
			e.limited = true
			if e.opt.OnLimit != nil {
				e.opt.OnLimit(e.opt.MaxProcesses)
			}
		}
		return nil
	}
	p := &Proc{key: k, keyStr: k.String(), attrs: attrs, idx: len(e.procs)}
	p.group = e.groupKey(k, attrs)
	e.track(p)
	h := e.hosts[k.Host]
	if h == nil {
		h = &host{name: k.Host}
		e.sizeHost(h)
		e.hosts[k.Host] = h
	}
	h.procs++
	h.seen = now
	p.host = h
	e.procs = append(e.procs, p)
	e.byKey[k] = p
	e.match(p)
	return e.Get(k, now)
}

// track (re)attaches the process's history.
func (e *Engine) track(p *Proc) {
	if e.opt.History != nil {
		p.hist = e.opt.History.Track(p.keyStr, p.key.Host, p.attrs)
	}
}

func (e *Engine) groupKey(k Key, attrs map[string]any) string {
	if e.opt.GroupKey != nil {
		return e.opt.GroupKey(k, attrs)
	}
	return k.String()
}

// NumAttrs is how many resource attributes the process was tracked with; the
// processor refreshes them when the count changes (an enriching processor
// added some).
func (p *Proc) NumAttrs() int { return len(p.attrs) }

// match recomputes the policies matching p and (re)sizes its windows.
func (e *Engine) match(p *Proc) {
	// The same reading of attributes as the dry-run and the API use, so
	// that what they say a policy selects is what the windows select.
	get := policy.AttrMap(p.attrs)
	p.pols = p.pols[:0]
	var cpuSize, thrSize int
	httpSize := map[string]int{}
	httpItem := map[string]*citem{}
	for i := range e.pols {
		cp := &e.pols[i]
		if !cp.p.Selector.Matches(get) {
			continue
		}
		p.pols = append(p.pols, i)
		for j := range cp.items {
			ci := &cp.items[j]
			switch ci.kind {
			case kCPU:
				cpuSize = max(cpuSize, ci.it.Period+Slack)
			case kThreads:
				thrSize = max(thrSize, ci.it.Period+Slack)
			case kErrorRate, kAvgRT:
				httpSize[ci.filter] = max(httpSize[ci.filter], ci.it.Period+Slack)
				httpItem[ci.filter] = ci
			}
		}
	}
	p.cpu = e.sizeRing(p.cpu, cpuSize)
	p.threads = e.sizeRing(p.threads, thrSize)

	old := p.http
	p.http = nil
	for f, n := range httpSize {
		var w *httpWin
		for _, o := range old {
			if o != nil && o.filter == f {
				w = o
				break
			}
		}
		if w == nil {
			w = &httpWin{filter: f, cache: map[string]bool{}, r: newRing[httpAgg](n)}
			e.windows++
		} else {
			w.r.resize(n)
			for i := range old {
				if old[i] == w {
					old[i] = nil
				}
			}
		}
		w.item = httpItem[f]
		clear(w.cache)
		p.http = append(p.http, w)
	}
	for _, o := range old {
		if o != nil {
			e.windows--
		}
	}

	p.rules = p.rules[:0]
	for _, pi := range p.pols {
		cp := &e.pols[pi]
		rs := make([]rule, 0, len(cp.items))
		for j := range cp.items {
			ci := &cp.items[j]
			r := rule{it: ci, kind: ci.kind}
			switch ci.kind {
			case kCPU:
				r.sc = p.cpu
			case kThreads:
				r.sc = p.threads
			case kLoad:
				r.sc = p.host.load
			default:
				for _, w := range p.http {
					if w.filter == ci.filter {
						r.hw = w
					}
				}
			}
			rs = append(rs, r)
		}
		p.rules = append(p.rules, rs)
	}
}

func (e *Engine) sizeRing(r *ring[float64], n int) *ring[float64] {
	switch {
	case n == 0 && r != nil:
		e.windows--
		return nil
	case n == 0:
		return nil
	case r == nil:
		e.windows++
		return newRing[float64](n)
	}
	r.resize(n)
	return r
}

func (p *Proc) saw(sec int64) {
	if sec <= p.batchUntil && !p.split {
		// More data for a second a previous batch completed: judge it
		// again with the whole second, and wait for later data or the
		// wall clock from now on.
		p.split = true
		p.evaluated = min(p.evaluated, sec-1)
	}
	p.batchNewest = max(p.batchNewest, sec)
	if sec > p.newest {
		if p.newest == 0 {
			p.evaluated = sec - 1
		}
		p.newest = sec
	}
}

func setScalar(r *ring[float64], l *scalar, sec int64, v float64) bool {
	if sec >= l.sec {
		*l = scalar{sec, v}
	}
	if r == nil {
		return true
	}
	s := r.slot(sec)
	if s == nil {
		return false
	}
	*s = v
	return true
}

// SetCPU records the process CPU use in percent for second sec.
func (e *Engine) SetCPU(p *Proc, sec int64, percent float64) {
	e.record(p, policy.MonitorProcessCPU, sec, percent)
	e.setScalar(p, p.cpu, &p.latest[0], sec, percent)
}

// SetThreads records the thread count for second sec.
func (e *Engine) SetThreads(p *Proc, sec int64, n float64) {
	e.record(p, policy.MonitorProcessThreadCount, sec, n)
	e.setScalar(p, p.threads, &p.latest[1], sec, n)
}

func (e *Engine) record(p *Proc, m policy.Monitor, sec int64, v float64) {
	if e.opt.History != nil && !math.IsNaN(v) {
		e.opt.History.SetScalar(p.hist, m, sec, v)
	}
}

func (e *Engine) setScalar(p *Proc, r *ring[float64], l *scalar, sec int64, v float64) {
	if sec <= 0 || math.IsNaN(v) {
		e.dropped++
		return
	}
	if !setScalar(r, l, sec, v) {
		e.dropped++
		return
	}
	p.saw(sec)
}

// SetHostLoad records the 1-minute load average of a host for second sec;
// it applies to every process of that host.
func (e *Engine) SetHostLoad(hostName string, sec int64, load float64, now time.Time) {
	h := e.hosts[hostName]
	if h == nil {
		if len(e.hosts) >= e.opt.MaxProcesses {
			e.dropped++
			return
		}
		h = &host{name: hostName}
		e.sizeHost(h)
		e.hosts[hostName] = h
	}
	h.seen = now
	if e.opt.History != nil && !math.IsNaN(load) {
		e.opt.History.SetHostLoad(hostName, sec, load)
	}
	if sec <= 0 || math.IsNaN(load) || !setScalar(h.load, &h.latest, sec, load) {
		e.dropped++
	}
}

// AddHTTP adds count requests that completed in second sec on path (url.path
// or http.route), sum being their total duration in seconds when hasSum.
func (e *Engine) AddHTTP(p *Proc, sec int64, path string, isError bool, count, sum float64, hasSum bool) {
	if sec <= 0 || count <= 0 {
		if sec <= 0 {
			e.dropped++
		}
		return
	}
	if e.opt.History != nil {
		e.opt.History.AddHTTP(p.hist, sec, isError, count, sum, hasSum)
	}
	hl := &p.httpLatest
	if sec > hl.sec {
		hl.sec, hl.agg = sec, httpAgg{}
	}
	if sec == hl.sec {
		hl.agg.add(isError, count, sum, hasSum)
	}
	for _, w := range p.http {
		if !w.matches(path) {
			continue
		}
		s := w.r.slot(sec)
		if s == nil {
			e.dropped++
			continue
		}
		s.add(isError, count, sum, hasSum)
	}
	p.saw(sec)
}

// Cumulative turns a cumulative histogram point of one series into the delta
// since the previous point. ok is false for the first point of a series and
// for points not newer than the previous one. A restarted series (new start
// time, or a count going down) yields its whole value.
func (p *Proc) Cumulative(series uint64, start, ts int64, count uint64, sum float64) (dCount uint64, dSum float64, ok bool) {
	if p.cum == nil {
		p.cum = make(map[uint64]cumState)
	}
	prev, found := p.cum[series]
	if found && ts <= prev.ts {
		return 0, 0, false
	}
	if !found && len(p.cum) >= maxSeriesPerProcess {
		return 0, 0, false
	}
	p.cum[series] = cumState{start: start, ts: ts, count: count, sum: sum}
	if !found {
		return 0, 0, false
	}
	if (start != 0 && start != prev.start) || count < prev.count {
		return count, sum, true
	}
	return count - prev.count, sum - prev.sum, true
}
