package window

import (
	"math"
	"time"

	"github.com/contprof/contprof/internal/control/policy"
)

// Trigger is a policy met for a process (for a network policy: for its
// service instance) at a second.
type Trigger struct {
	// Policy is the engine's copy; do not modify.
	Policy *policy.Policy
	// Processes covered: the process that met the policy first; for a network
	// policy then every other tracked process of its service instance that
	// the policy selects.
	Processes []ProcessInfo
	Causes    []Cause
	// Second is the second that completed the trigger; At is its end.
	Second int64
	At     time.Time

	sup supKey
}

// ProcessInfo names a process and its resource attributes.
type ProcessInfo struct {
	Key   Key
	Attrs map[string]any
}

// Cause is one item met.
type Cause struct {
	ItemIndex int
	Item      policy.Item
	// Values are the per-second values of the period that crossed the
	// threshold, oldest first.
	Values []float64
}

// Advance judges every second that has completed by now, for the processes
// that received data since the last call (all=false, after a batch) or for
// all of them (all=true, on the wall-clock tick, which also drops idle
// processes). It returns the triggers to request, and nil when there are
// none. Each returned trigger's subject is held back until Resolve says
// otherwise (RefusedBackoff meanwhile).
func (e *Engine) Advance(now time.Time, all bool) []Trigger {
	return e.advance(now, all, false)
}

// EndBatch is Advance(now, false) after a batch that carried every point of
// a second of each process it names: the newest second of each such process
// is complete now, without waiting for a later second or the wall clock.
func (e *Engine) EndBatch(now time.Time) []Trigger {
	return e.advance(now, false, true)
}

func (e *Engine) advance(now time.Time, all, batch bool) []Trigger {
	wall := int64(math.Floor(float64(now.Add(-e.opt.CompletionDelay).UnixNano())/1e9)) - 1
	var out []Trigger
	if all {
		idle := now.Add(-e.opt.IdleTimeout)
		for i := 0; i < len(e.procs); {
			p := e.procs[i]
			if p.seen.Before(idle) {
				e.drop(p)
				continue // drop moved another process into slot i
			}
			out = e.evaluate(p, wall, now, false, out)
			i++
		}
		for name, h := range e.hosts {
			if h.procs == 0 && h.seen.Before(idle) {
				if h.load != nil {
					e.windows--
				}
				delete(e.hosts, name)
			}
		}
		if e.opt.History != nil {
			e.opt.History.Prune(now)
		}
		for k, until := range e.suppress {
			if !now.Before(until) {
				delete(e.suppress, k)
			}
		}
	} else {
		for _, p := range e.touched {
			if p.idx >= 0 {
				out = e.evaluate(p, wall, now, batch, out)
			}
		}
	}
	for _, p := range e.touched {
		p.touched = false
		if batch {
			p.batchNewest = 0
		}
	}
	e.touched = e.touched[:0]
	return out
}

func (e *Engine) drop(p *Proc) {
	last := len(e.procs) - 1
	e.procs[p.idx] = e.procs[last]
	e.procs[p.idx].idx = p.idx
	e.procs[last] = nil
	e.procs = e.procs[:last]
	p.idx = -1
	delete(e.byKey, p.key)
	p.host.procs--
	if p.cpu != nil {
		e.windows--
	}
	if p.threads != nil {
		e.windows--
	}
	e.windows -= len(p.http)
	if e.limited && len(e.procs) < e.opt.MaxProcesses {
		e.limited = false
	}
}

// evaluate judges the seconds of p completed since its last judgement.
func (e *Engine) evaluate(p *Proc, wall int64, now time.Time, batch bool, out []Trigger) []Trigger {
	complete := p.newest - 1
	if w := min(wall, p.newest); w > complete {
		complete = w
	}
	if batch && !p.split && p.batchNewest > complete {
		complete = p.batchNewest
		p.batchUntil = complete
	}
	if complete <= p.evaluated {
		return out
	}
	if len(p.pols) > 0 {
		// Older seconds may have lost the start of their period to newer data.
		for s := max(p.evaluated+1, p.newest-Slack); s <= complete; s++ {
			out = e.judge(p, s, now, out)
		}
	}
	p.evaluated = complete
	return out
}

// judge evaluates every item of the policies matching p at second s.
func (e *Engine) judge(p *Proc, s int64, now time.Time, out []Trigger) []Trigger {
	for i, pi := range p.pols {
		met := false
		for j := range p.rules[i] {
			r := &p.rules[i][j]
			e.evaluations++
			if r.judgeCount(s) >= r.it.it.Count {
				met = true
			}
		}
		if !met {
			continue
		}
		cp := &e.pols[pi]
		sk := supKey{policy: cp.p.Name, subject: p.keyStr}
		if cp.p.Target == policy.TargetNetwork {
			sk.subject = "instance:" + p.group
		}
		if until, ok := e.suppress[sk]; ok && now.Before(until) {
			continue
		}
		e.suppress[sk] = now.Add(e.opt.RefusedBackoff)
		t := Trigger{
			Policy:    &cp.p,
			Processes: []ProcessInfo{{Key: p.key, Attrs: p.attrs}},
			Second:    s,
			At:        time.Unix(s+1, 0),
			sup:       sk,
		}
		if cp.p.Target == policy.TargetNetwork {
			for _, o := range e.procs {
				if o != p && o.group == p.group && o.matches(pi) {
					t.Processes = append(t.Processes, ProcessInfo{Key: o.key, Attrs: o.attrs})
				}
			}
		}
		for j := range p.rules[i] {
			r := &p.rules[i][j]
			var vals []float64
			if n := r.count(s, &vals); n >= r.it.it.Count {
				t.Causes = append(t.Causes, Cause{ItemIndex: r.it.index, Item: *r.it.it, Values: vals})
			}
		}
		out = append(out, t)
	}
	return out
}

func (p *Proc) matches(pi int) bool {
	for _, x := range p.pols {
		if x == pi {
			return true
		}
	}
	return false
}

// judgeCount is how many seconds of the item's period ending at s crossed
// its threshold. In steady state it slides the count of the previous
// judgement (the second entering minus the second leaving) instead of
// scanning the period; any write into an already judged second, a resize, or
// a jump longer than the period falls back to a full scan.
func (r *rule) judgeCount(s int64) int {
	var (
		gen          uint64
		newest, size int64
		judged       *int64
	)
	switch {
	case r.sc != nil:
		gen, newest, size, judged = r.sc.gen, r.sc.newest, r.sc.size(), &r.sc.judged
	case r.hw != nil:
		gen, newest, size, judged = r.hw.r.gen, r.hw.r.newest, r.hw.r.size(), &r.hw.r.judged
	default:
		return 0
	}
	period := int64(r.it.it.Period)
	var n int
	if r.last > 0 && gen == r.gen && s > r.last && s-r.last <= period && r.last+1-period > newest-size {
		n = r.n
		for sec := r.last + 1; sec <= s; sec++ {
			if r.crossed(sec) {
				n++
			}
			if r.crossed(sec - period) {
				n--
			}
		}
	} else {
		n = r.count(s, nil)
	}
	if verifyCount != nil {
		verifyCount(r, s, n)
	}
	r.last, r.n, r.gen = s, n, gen
	if s > *judged {
		*judged = s
	}
	return n
}

// verifyCount, set by tests, checks every running count against a full scan.
var verifyCount func(r *rule, s int64, n int)

// crossed reports whether second sec has data at or above the threshold.
func (r *rule) crossed(sec int64) bool {
	v, ok := r.value(sec)
	return ok && v >= r.it.it.Threshold
}

// count is how many seconds of the item's period ending at s crossed its
// threshold; with vals non-nil it also collects their values, oldest first.
func (r *rule) count(s int64, vals *[]float64) int {
	start := max(s-int64(r.it.it.Period)+1, 1)
	n := 0
	for sec := start; sec <= s; sec++ {
		if v, ok := r.value(sec); ok && v >= r.it.it.Threshold {
			n++
			if vals != nil {
				*vals = append(*vals, v)
			}
		}
	}
	return n
}

// value is the item's value at second sec, if the window has one.
func (r *rule) value(sec int64) (float64, bool) {
	if r.sc != nil {
		v, ok := r.sc.get(sec)
		if !ok {
			return 0, false
		}
		return *v, true
	}
	if r.hw == nil {
		return 0, false
	}
	a, ok := r.hw.r.get(sec)
	if !ok {
		return 0, false
	}
	if r.kind == kErrorRate {
		return a.errorRate()
	}
	return a.avgMillis()
}

// Resolve records what the controller answered to t: accepted holds the
// subject back for the policy's silence (the controller would refuse anyway);
// a refusal with an end of silence holds it until then; any other refusal
// keeps the RefusedBackoff set by Advance.
func (e *Engine) Resolve(t *Trigger, now time.Time, accepted bool, silencedUntil time.Time) {
	switch {
	case accepted:
		silence := t.Policy.Silence
		if silence <= 0 {
			silence = policy.DefaultSilence
		}
		e.suppress[t.sup] = now.Add(silence)
	case !silencedUntil.IsZero():
		e.suppress[t.sup] = silencedUntil
	}
}

// Status is one tracked process as the API shows it.
type Status struct {
	Key      Key
	Attrs    map[string]any
	Policies []string
	// Latest value per monitor with data, in policy units.
	Latest map[policy.Monitor]float64
	// LastData is the start of the newest second with data.
	LastData time.Time
}

// Snapshot lists every tracked process.
func (e *Engine) Snapshot() []Status {
	out := make([]Status, 0, len(e.procs))
	for _, p := range e.procs {
		st := Status{Key: p.key, Attrs: p.attrs, Latest: map[policy.Monitor]float64{}}
		for _, pi := range p.pols {
			st.Policies = append(st.Policies, e.pols[pi].p.Name)
		}
		if p.latest[0].sec > 0 {
			st.Latest[policy.MonitorProcessCPU] = p.latest[0].v
		}
		if p.latest[1].sec > 0 {
			st.Latest[policy.MonitorProcessThreadCount] = p.latest[1].v
		}
		if p.host.latest.sec > 0 {
			st.Latest[policy.MonitorSystemLoad] = p.host.latest.v
		}
		if v, ok := p.httpLatest.agg.errorRate(); ok {
			st.Latest[policy.MonitorHTTPErrorRate] = v
		}
		if v, ok := p.httpLatest.agg.avgMillis(); ok {
			st.Latest[policy.MonitorHTTPAvgResponseTime] = v
		}
		if p.newest > 0 {
			st.LastData = time.Unix(p.newest, 0)
		}
		out = append(out, st)
	}
	return out
}

// Stats are counters for the processor's own telemetry.
type Stats struct {
	Processes int
	Windows   int
	// Evaluations counts item judgements; Dropped counts points too old
	// for their window or without a valid time.
	Evaluations uint64
	Dropped     uint64
}

// Drop counts n points the caller could not place (e.g. of an untracked
// process).
func (e *Engine) Drop(n int) { e.dropped += uint64(n) }

// Stats returns the current counters.
func (e *Engine) Stats() Stats {
	return Stats{Processes: len(e.procs), Windows: e.windows, Evaluations: e.evaluations, Dropped: e.dropped}
}
