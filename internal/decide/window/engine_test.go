package window

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/control/policy"
)

const base = int64(1_700_000_000)

var gap = math.NaN()

func cpuItem(thr float64, period, count int) policy.Item {
	return policy.Item{Monitor: policy.MonitorProcessCPU, Threshold: thr, Period: period, Count: count}
}

func onCPU(name string, items ...policy.Item) policy.Policy {
	return policy.Policy{Name: name, Target: policy.TargetOnCPU, Items: items}
}

// point is one value arriving, in arrival order.
type point struct {
	off int64 // second offset from base
	v   float64
}

func seq(vals ...float64) []point {
	var ps []point
	for i, v := range vals {
		if !math.IsNaN(v) {
			ps = append(ps, point{int64(i), v})
		}
	}
	return ps
}

type fired struct {
	policy string
	off    int64
	causes []Cause
}

// feed sends points to one process in arrival order, advancing after each
// one as the processor does after a batch, then lets the wall clock complete
// the rest. Every trigger is accepted.
func feed(t *testing.T, e *Engine, k Key, attrs map[string]any, pts []point) []fired {
	t.Helper()
	return feedWith(t, e, k, attrs, pts, func(now time.Time) []Trigger { return e.Advance(now, false) })
}

// feedBatches is feed with each point a batch of its own ended by EndBatch:
// a second is complete as soon as its batch is in.
func feedBatches(t *testing.T, e *Engine, k Key, attrs map[string]any, pts []point) []fired {
	t.Helper()
	return feedWith(t, e, k, attrs, pts, e.EndBatch)
}

func feedWith(t *testing.T, e *Engine, k Key, attrs map[string]any, pts []point, end func(time.Time) []Trigger) []fired {
	t.Helper()
	now := time.Unix(base, 0) // wall clock far behind: only data completes seconds
	var out []fired
	collect := func(ts []Trigger) {
		for i := range ts {
			tr := &ts[i]
			out = append(out, fired{tr.Policy.Name, tr.Second - base, tr.Causes})
			e.Resolve(tr, now, true, time.Time{})
		}
	}
	for _, pt := range pts {
		p := e.Get(k, now)
		if p == nil {
			p = e.Put(k, attrs, now)
		}
		e.SetCPU(p, base+pt.off, pt.v)
		collect(end(now))
	}
	collect(e.Advance(time.Unix(base+60, 0), true))
	return out
}

func offs(fs []fired) []int64 {
	var o []int64
	for _, f := range fs {
		o = append(o, f.off)
	}
	return o
}

var proc1 = Key{Host: "h1", PID: 42, Start: 1}

func TestWindowSemantics(t *testing.T) {
	tests := []struct {
		name  string
		items []policy.Item
		pts   []point
		want  []int64 // offsets of the seconds that triggered
		// wantValues are the cause values of the first trigger.
		wantValues []float64
	}{
		{
			name:  "one-second spike does not trigger count 3",
			items: []policy.Item{cpuItem(80, 5, 3)},
			pts:   seq(10, 95, 10, 10, 10, 10, 10),
		},
		{
			name:       "sustained crossing triggers at the count-th crossing second",
			items:      []policy.Item{cpuItem(80, 5, 3)},
			pts:        seq(10, 90, 91, 92, 93, 94),
			want:       []int64{3},
			wantValues: []float64{90, 91, 92},
		},
		{
			name:       "value equal to the threshold crosses",
			items:      []policy.Item{cpuItem(80, 3, 3)},
			pts:        seq(80, 80, 80),
			want:       []int64{2},
			wantValues: []float64{80, 80, 80},
		},
		{
			name:       "crossings need not be consecutive",
			items:      []policy.Item{cpuItem(80, 5, 3)},
			pts:        seq(90, 10, 91, 10, 92),
			want:       []int64{4},
			wantValues: []float64{90, 91, 92},
		},
		{
			name:  "crossings spread wider than the period do not trigger",
			items: []policy.Item{cpuItem(80, 5, 3)},
			pts:   seq(90, 10, 10, 10, 90, 10, 10, 10, 90),
		},
		{
			name:  "seconds without data do not cross",
			items: []policy.Item{cpuItem(80, 3, 3)},
			pts:   seq(90, gap, 90, 90),
			want:  []int64{},
		},
		{
			name:       "a gap inside the period: the crossings around it still count",
			items:      []policy.Item{cpuItem(80, 5, 3)},
			pts:        seq(90, gap, gap, 91, 92),
			want:       []int64{4},
			wantValues: []float64{90, 91, 92},
		},
		{
			name:  "out-of-order point inside the window lands in its own slot",
			items: []policy.Item{cpuItem(80, 3, 3)},
			// 1 arrives after 2: second 1 was judged without it, second 2 with it.
			pts:        []point{{0, 90}, {2, 92}, {1, 91}, {3, 10}},
			want:       []int64{2},
			wantValues: []float64{90, 91, 92},
		},
		{
			name:  "point older than the window is dropped",
			items: []policy.Item{cpuItem(80, 2, 2)},
			// window = 2+Slack slots; offset 0 arrives when 20 is the newest.
			pts: []point{{20, 90}, {0, 90}, {21, 10}},
		},
		{
			name: "two items on one monitor, each judged on its own period",
			items: []policy.Item{
				cpuItem(80, 3, 2),  // A
				cpuItem(80, 10, 4), // B
			},
			// A would meet at 3 if it looked at B's 10 seconds.
			pts:        seq(90, 10, 10, 90, 90, 90),
			want:       []int64{4},
			wantValues: []float64{90, 90},
		},
		{
			name: "the longer item still sees its oldest second",
			items: []policy.Item{
				cpuItem(80, 3, 2),
				cpuItem(80, 10, 4),
			},
			pts:        seq(90, 10, 10, 91, 10, 10, 92, 10, 10, 93),
			want:       []int64{9},
			wantValues: []float64{90, 91, 92, 93},
		},
		{
			name:  "period 1 count 1 fires on the first crossing second",
			items: []policy.Item{cpuItem(50, 1, 1)},
			pts:   seq(10, 60),
			want:  []int64{1},
			// the last second is completed by the wall clock, not by later data
			wantValues: []float64{60},
		},
	}
	// The same semantics whether a second completes by later data or as
	// soon as the batch that carried it is in.
	feeds := []struct {
		name string
		feed func(*testing.T, *Engine, Key, map[string]any, []point) []fired
	}{{"later data", feed}, {"end of batch", feedBatches}}
	for _, f := range feeds {
		for _, tc := range tests {
			t.Run(f.name+"/"+tc.name, func(t *testing.T) {
				e := New(Options{})
				e.SetPolicies([]policy.Policy{onCPU("p", tc.items...)})
				got := f.feed(t, e, proc1, nil, tc.pts)
				if len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(offs(got), tc.want)) {
					t.Fatalf("triggered at %v, want %v", offs(got), tc.want)
				}
				if len(got) > 0 {
					if len(got[0].causes) != 1 || !reflect.DeepEqual(got[0].causes[0].Values, tc.wantValues) {
						t.Fatalf("causes %+v, want one with values %v", got[0].causes, tc.wantValues)
					}
				}
			})
		}
	}
}

func TestEndBatchCompletesAtOnce(t *testing.T) {
	e := New(Options{})
	e.SetPolicies([]policy.Policy{onCPU("p", cpuItem(80, 3, 2))})
	now := time.Unix(base, 0) // wall clock far behind
	p := e.Put(proc1, nil, now)
	e.SetCPU(p, base, 90)
	if trs := e.EndBatch(now); len(trs) != 0 {
		t.Fatalf("fired after one crossing second: %+v", trs)
	}
	p = e.Get(proc1, now)
	e.SetCPU(p, base+1, 90)
	trs := e.EndBatch(now)
	if len(trs) != 1 || trs[0].Second != base+1 {
		t.Fatalf("triggers %+v, want one at the second the batch carried", trs)
	}
}

func TestEndBatchFallsBackForSplitSeconds(t *testing.T) {
	// A source sending the threads of a second in the batch after its CPU:
	// the second is judged again once the rest arrives, and from then on
	// the process waits for later data.
	thr := policy.Item{Monitor: policy.MonitorProcessThreadCount, Threshold: 100, Period: 2, Count: 2}
	e := New(Options{})
	e.SetPolicies([]policy.Policy{onCPU("p", thr)})
	now := time.Unix(base, 0)
	var got []int64
	for i := int64(0); i < 4; i++ {
		p := e.Get(proc1, now)
		if p == nil {
			p = e.Put(proc1, nil, now)
		}
		e.SetCPU(p, base+i, 10)
		for _, tr := range e.EndBatch(now) {
			got = append(got, tr.Second-base)
			e.Resolve(&tr, now, true, time.Time{})
		}
		p = e.Get(proc1, now)
		e.SetThreads(p, base+i, 200)
		for _, tr := range e.EndBatch(now) {
			got = append(got, tr.Second-base)
			e.Resolve(&tr, now, true, time.Time{})
		}
	}
	if !reflect.DeepEqual(got, []int64{1}) {
		t.Fatalf("triggered at %v, want [1]", got)
	}
}

func TestDroppedOldPointCounted(t *testing.T) {
	e := New(Options{})
	e.SetPolicies([]policy.Policy{onCPU("p", cpuItem(80, 2, 2))})
	feed(t, e, proc1, nil, []point{{20, 90}, {0, 90}})
	if d := e.Stats().Dropped; d != 1 {
		t.Fatalf("dropped %d, want 1", d)
	}
}

func TestPIDReuseKeepsWindowsApart(t *testing.T) {
	e := New(Options{})
	e.SetPolicies([]policy.Policy{onCPU("p", cpuItem(80, 10, 3))})
	old := Key{Host: "h1", PID: 42, Start: 100}
	reused := Key{Host: "h1", PID: 42, Start: 200}
	if got := feed(t, e, old, nil, seq(90, 90)); len(got) != 0 {
		t.Fatalf("old process triggered: %v", offs(got))
	}
	// Same host and pid, later start: a different process. Its one crossing
	// must not add up with the old process's two.
	if got := feed(t, e, reused, nil, []point{{2, 90}}); len(got) != 0 {
		t.Fatalf("reused pid mixed with the old window: triggered at %v", offs(got))
	}
	if n := e.Stats().Processes; n != 2 {
		t.Fatalf("%d processes, want 2", n)
	}
}

func TestPolicyChangeMidStream(t *testing.T) {
	e := New(Options{})
	e.SetPolicies([]policy.Policy{onCPU("p", cpuItem(80, 3, 3))})
	// Crossings at 0 and 1, then nothing for a while: with period 3 they
	// are not enough.
	if got := feed(t, e, proc1, nil, seq(90, 90, 10, 10)); len(got) != 0 {
		t.Fatalf("triggered early: %v", offs(got))
	}
	// Longer period: the window grows and keeps seconds 0 and 1, so one more
	// crossing at 4 meets 3 of 10.
	e.SetPolicies([]policy.Policy{onCPU("p", cpuItem(80, 10, 3))})
	got := feed(t, e, proc1, nil, []point{{4, 90}, {5, 10}})
	if !reflect.DeepEqual(offs(got), []int64{4}) {
		t.Fatalf("triggered at %v, want [4]", offs(got))
	}
	if !reflect.DeepEqual(got[0].causes[0].Values, []float64{90, 90, 90}) {
		t.Fatalf("values %v", got[0].causes[0].Values)
	}

	// A policy whose selector no longer matches stops judging the process.
	e.SetPolicies([]policy.Policy{{
		Name: "q", Target: policy.TargetOnCPU,
		Selector: policy.Selector{"service.name": {Exact: "other"}},
		Items:    []policy.Item{cpuItem(80, 1, 1)},
	}})
	if got := feed(t, e, proc1, map[string]any{"service.name": "checkout"}, seq(0, 0, 0, 0, 0, 0, 0, 99)); len(got) != 0 {
		t.Fatalf("unmatched policy triggered: %+v", got)
	}
	if w := e.Stats().Windows; w != 0 {
		t.Fatalf("%d windows held with no matching policy, want 0", w)
	}
}

func TestSeveralPoliciesAndSelectors(t *testing.T) {
	e := New(Options{})
	e.SetPolicies([]policy.Policy{
		onCPU("all-cpu", cpuItem(80, 3, 2)),
		{
			Name: "checkout-offcpu", Target: policy.TargetOffCPU,
			Selector: policy.Selector{"service.name": {Regex: "^check"}},
			Items:    []policy.Item{{Monitor: policy.MonitorProcessThreadCount, Threshold: 100, Period: 2, Count: 1}},
		},
		{
			Name: "cart-only", Target: policy.TargetOnCPU,
			Selector: policy.Selector{"service.name": {Exact: "cart"}},
			Items:    []policy.Item{cpuItem(1, 1, 1)},
		},
	})
	now := time.Unix(base, 0)
	checkout := e.Put(Key{"h1", 1, 1}, map[string]any{"service.name": "checkout"}, now)
	notcheckout := e.Put(Key{"h1", 2, 1}, map[string]any{"service.name": "xcheckout"}, now)
	for off := int64(0); off < 4; off++ {
		for _, p := range []*Proc{checkout, notcheckout} {
			e.Get(p.key, now)
			e.SetCPU(p, base+off, 90)
			e.SetThreads(p, base+off, 150)
		}
	}
	got := map[string][]string{}
	for _, tr := range e.Advance(now, false) {
		got[tr.Policy.Name] = append(got[tr.Policy.Name], tr.Processes[0].Key.String())
		if tr.Second != base+1 && tr.Policy.Name == "all-cpu" {
			t.Errorf("all-cpu fired at %d", tr.Second-base)
		}
	}
	want := map[string][]string{
		"all-cpu":         {"h1/1/1", "h1/2/1"},
		"checkout-offcpu": {"h1/1/1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("triggers %v, want %v", got, want)
	}
}

func TestSystemLoadSharedByHostProcesses(t *testing.T) {
	e := New(Options{})
	e.SetPolicies([]policy.Policy{{
		Name: "load", Target: policy.TargetOnCPU,
		Items: []policy.Item{{Monitor: policy.MonitorSystemLoad, Threshold: 4, Period: 5, Count: 2}},
	}})
	now := time.Unix(base, 0)
	a := e.Put(Key{"h1", 1, 1}, nil, now)
	b := e.Put(Key{"h1", 2, 1}, nil, now)
	c := e.Put(Key{"h2", 3, 1}, nil, now)
	var got []string
	for off := int64(0); off < 5; off++ {
		e.SetHostLoad("h1", base+off, 6, now)
		e.SetHostLoad("h2", base+off, 1, now)
		for _, p := range []*Proc{a, b, c} {
			e.Get(p.key, now)
			e.SetCPU(p, base+off, 1) // processes report every second
		}
		for _, tr := range e.Advance(now, false) {
			got = append(got, tr.Processes[0].Key.String())
			if tr.Second != base+1 {
				t.Errorf("fired at %d, want 1", tr.Second-base)
			}
			if !reflect.DeepEqual(tr.Causes[0].Values, []float64{6, 6}) {
				t.Errorf("values %v", tr.Causes[0].Values)
			}
		}
	}
	if len(got) != 2 || got[0] == got[1] || (got[0] != "h1/1/1" && got[0] != "h1/2/1") {
		t.Fatalf("triggered for %v, want both processes of h1 and none of h2", got)
	}
	st := e.Snapshot()
	for _, s := range st {
		wantLoad := 6.0
		if s.Key.Host == "h2" {
			wantLoad = 1
		}
		if s.Latest[policy.MonitorSystemLoad] != wantLoad {
			t.Errorf("%v latest load %v, want %v", s.Key, s.Latest[policy.MonitorSystemLoad], wantLoad)
		}
	}
}

func TestNetworkCoversServiceInstance(t *testing.T) {
	e := New(Options{GroupKey: func(_ Key, a map[string]any) string { return a["service.instance.id"].(string) }})
	e.SetPolicies([]policy.Policy{{
		Name: "net", Target: policy.TargetNetwork,
		Items: []policy.Item{cpuItem(50, 2, 1)},
	}})
	now := time.Unix(base, 0)
	ps := []*Proc{
		e.Put(Key{"h1", 1, 1}, map[string]any{"service.instance.id": "i-1"}, now),
		e.Put(Key{"h1", 2, 1}, map[string]any{"service.instance.id": "i-1"}, now),
		e.Put(Key{"h1", 3, 1}, map[string]any{"service.instance.id": "i-2"}, now),
	}
	for off := int64(0); off < 2; off++ {
		for _, p := range ps {
			e.Get(p.key, now)
			e.SetCPU(p, base+off, 90)
		}
	}
	trs := e.Advance(now, false)
	if len(trs) != 2 {
		t.Fatalf("%d triggers, want one per service instance", len(trs))
	}
	for _, tr := range trs {
		inst := tr.Processes[0].Attrs["service.instance.id"]
		want := map[any]int{"i-1": 2, "i-2": 1}[inst]
		if len(tr.Processes) != want {
			t.Errorf("instance %v: %d processes, want %d", inst, len(tr.Processes), want)
		}
	}
}

func TestRequestsNotRepeated(t *testing.T) {
	type answer struct {
		accepted bool
		until    time.Duration // silence end after now, for refusals
	}
	tests := []struct {
		name string
		ans  answer
		// seconds (from the first trigger) at which a request is made again
		want []int64
	}{
		{"accepted: held for the policy silence", answer{accepted: true}, []int64{0, 60}},
		{"refused until T: held until T", answer{until: 25 * time.Second}, []int64{0, 25, 50, 75}},
		{"refused without T: backoff", answer{}, []int64{0, 30, 60}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := New(Options{RefusedBackoff: 30 * time.Second})
			p := onCPU("p", cpuItem(80, 1, 1))
			p.Silence = time.Minute
			e.SetPolicies([]policy.Policy{p})
			var got []int64
			// the condition persists for 80 seconds; the wall clock keeps pace
			for off := int64(0); off < 80; off++ {
				now := time.Unix(base+off, 0)
				pr := e.Get(proc1, now)
				if pr == nil {
					pr = e.Put(proc1, nil, now)
				}
				e.SetCPU(pr, base+off, 99)
				for _, tr := range e.Advance(now, off%7 == 0) {
					if tr.Second != base+off-1 {
						t.Fatalf("at %d judged second %d", off, tr.Second-base)
					}
					got = append(got, off)
					e.Resolve(&tr, now, tc.ans.accepted, timeIf(tc.ans.until != 0, now.Add(tc.ans.until)))
				}
			}
			// relative to the first request (made when second 1 completed second 0)
			for i := range got {
				got[i] -= 1
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("requests at %v, want %v", got, tc.want)
			}
		})
	}
}

func timeIf(ok bool, t time.Time) time.Time {
	if ok {
		return t
	}
	return time.Time{}
}

func TestIdleProcessesDroppedAndLimit(t *testing.T) {
	var limitCalls int
	e := New(Options{IdleTimeout: time.Minute, MaxProcesses: 2, OnLimit: func(int) { limitCalls++ }})
	e.SetPolicies([]policy.Policy{onCPU("p", cpuItem(80, 5, 1))})
	t0 := time.Unix(base, 0)
	a := e.Put(Key{"h", 1, 1}, nil, t0)
	e.SetCPU(a, base, 1)
	e.Put(Key{"h", 2, 1}, nil, t0)
	for i := 0; i < 3; i++ {
		if p := e.Put(Key{"h", int64(10 + i), 1}, nil, t0); p != nil {
			t.Fatal("tracked beyond max_processes")
		}
	}
	if limitCalls != 1 {
		t.Fatalf("limit reported %d times, want once", limitCalls)
	}
	if w := e.Stats().Windows; w != 2 {
		t.Fatalf("%d windows, want 2", w)
	}
	// Process 2 stays active; process 1 goes idle.
	e.Get(Key{"h", 2, 1}, t0.Add(50*time.Second))
	e.Advance(t0.Add(61*time.Second), true)
	st := e.Stats()
	if st.Processes != 1 || st.Windows != 1 {
		t.Fatalf("after idle sweep: %+v, want 1 process and 1 window", st)
	}
	if p := e.Put(Key{"h", 20, 1}, nil, t0.Add(61*time.Second)); p == nil {
		t.Fatal("room freed by the idle sweep was not reused")
	}
	e.Put(Key{"h", 21, 1}, nil, t0.Add(61*time.Second))
	if limitCalls != 2 {
		t.Fatalf("limit reported %d times after a new episode, want 2", limitCalls)
	}
}

func TestHTTPWindows(t *testing.T) {
	errItem := policy.Item{Monitor: policy.MonitorHTTPErrorRate, Threshold: 50, Period: 1, Count: 1, URIList: []string{"/pay"}}
	rtItem := policy.Item{Monitor: policy.MonitorHTTPAvgResponseTime, Threshold: 200, Period: 1, Count: 1, URIRegex: "^/api/"}
	e := New(Options{})
	e.SetPolicies([]policy.Policy{{Name: "err", Target: policy.TargetNetwork, Items: []policy.Item{errItem}},
		{Name: "rt", Target: policy.TargetOnCPU, Items: []policy.Item{rtItem}}})
	now := time.Unix(base, 0)
	p := e.Put(proc1, nil, now)
	s := base
	// /pay: 3 requests with 500, 2 with 200 -> 60 % (the /cart errors do not count)
	e.AddHTTP(p, s, "/pay", true, 3, 0.3, true)
	e.AddHTTP(p, s, "/pay", false, 2, 0.2, true)
	e.AddHTTP(p, s, "/cart", true, 100, 1, true)
	// /api/*: 2 requests 0.5 s in total -> 250 ms; /pay's fast ones do not count
	e.AddHTTP(p, s, "/api/a", false, 1, 0.1, true)
	e.AddHTTP(p, s, "/api/b", false, 1, 0.4, true)
	e.AddHTTP(p, s+1, "/other", false, 1, 0, true) // completes second 0
	got := map[string][]float64{}
	for _, tr := range e.Advance(now, false) {
		got[tr.Policy.Name] = tr.Causes[0].Values
	}
	want := map[string][]float64{"err": {60}, "rt": {250}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	lat := e.Snapshot()[0].Latest
	if lat[policy.MonitorHTTPAvgResponseTime] != 0 || lat[policy.MonitorHTTPErrorRate] != 0 {
		t.Fatalf("latest (second 1: one fast OK request) = %v", lat)
	}
}

func TestCumulative(t *testing.T) {
	p := &Proc{}
	steps := []struct {
		start, ts int64
		count     uint64
		sum       float64
		wantN     uint64
		wantSum   float64
		wantOK    bool
	}{
		{1, 10, 5, 1, 0, 0, false},    // first point: no interval yet
		{1, 11, 8, 1.5, 3, 0.5, true}, // delta
		{1, 11, 9, 2, 0, 0, false},    // not newer: ignored
		{1, 12, 6, 1.2, 6, 1.2, true}, // count went down: restarted series
		{5, 13, 2, 0.2, 2, 0.2, true}, // new start time: restarted series
		{5, 14, 2, 0.2, 0, 0, true},   // idle second: zero requests
	}
	for i, s := range steps {
		n, sum, ok := p.Cumulative(7, s.start, s.ts, s.count, s.sum)
		if n != s.wantN || math.Abs(sum-s.wantSum) > 1e-9 || ok != s.wantOK {
			t.Fatalf("step %d: got (%d, %v, %v), want (%d, %v, %v)", i, n, sum, ok, s.wantN, s.wantSum, s.wantOK)
		}
	}
}

func TestRingResizeKeepsData(t *testing.T) {
	r := newRing[float64](4)
	for s := int64(10); s < 14; s++ {
		*r.slot(s) = float64(s)
	}
	r.resize(9)
	for s := int64(10); s < 14; s++ {
		if v, ok := r.get(s); !ok || *v != float64(s) {
			t.Fatalf("second %d lost on grow", s)
		}
	}
	r.resize(2)
	if _, ok := r.get(11); ok {
		t.Fatal("second 11 kept after shrinking to 2 slots ending at 13")
	}
	for s := int64(12); s < 14; s++ {
		if v, ok := r.get(s); !ok || *v != float64(s) {
			t.Fatalf("second %d lost on shrink", s)
		}
	}
}

// The windows select with the same reading of attribute values as the
// dry-run and the API (policy.AttrMap), also for values that are not
// strings: what a dry-run says a policy selects is what it selects.
func TestSelectorReadsAttributesLikeDryRun(t *testing.T) {
	sel := policy.Selector{"k8s.pod.ports": {Exact: "[80 443]"}}
	e := New(Options{})
	e.SetPolicies([]policy.Policy{{Name: "ports", Target: policy.TargetOnCPU, Selector: sel,
		Items: []policy.Item{cpuItem(1, 1, 1)}}})
	for i, attrs := range []map[string]any{
		{"k8s.pod.ports": []any{int64(80), int64(443)}},
		{"k8s.pod.ports": "[80 443]"},
		{"k8s.pod.ports": nil},
		{},
	} {
		p := e.Put(Key{"h1", int64(i + 1), 1}, attrs, time.Unix(base, 0))
		if got, want := len(p.pols) == 1, sel.Matches(policy.AttrMap(attrs)); got != want {
			t.Errorf("attributes %v: windows select %v, dry-run %v", attrs, got, want)
		}
	}
}
