package history

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/control/policy"
)

// refRing is the plain ring the series replaces: the reference the
// encoding must match second for second.
type refRing struct {
	v      []float32
	newest int64
}

func newRefRing(n int64) *refRing {
	r := &refRing{v: make([]float32, n)}
	for i := range r.v {
		r.v[i] = nan32
	}
	return r
}

func (r *refRing) set(sec int64, v float32) {
	n := int64(len(r.v))
	if sec <= 0 || sec <= r.newest-n {
		return
	}
	if sec > r.newest {
		for x := max(r.newest+1, sec-n+1); x <= sec; x++ {
			r.v[x%n] = nan32
		}
		r.newest = sec
	}
	r.v[sec%n] = v
}

func (r *refRing) get(sec int64) (float64, bool) {
	n := int64(len(r.v))
	if sec > r.newest || sec <= r.newest-n || sec <= 0 {
		return 0, false
	}
	v := r.v[sec%n]
	return float64(v), !math.IsNaN(float64(v))
}

// check compares every second around the kept span.
func check(t *testing.T, step int, s *series, r *refRing, n int64) {
	t.Helper()
	newest := max(s.newest, r.newest)
	for sec := newest - 2*n; sec <= newest+2; sec++ {
		got, gok := s.get(n, sec)
		want, wok := r.get(sec)
		if gok != wok || gok && got != want {
			t.Fatalf("step %d, second %d (newest %d, dense %v, %d points): got %v,%v want %v,%v",
				step, sec, newest, s.dense != nil, len(s.pts), got, gok, want, wok)
		}
	}
	if s.dense == nil {
		// Points are minimal: no two neighbours hold the same value, and
		// none starts with no data.
		for i := range s.pts {
			if i > 0 && same(s.pts[i].v, s.pts[i-1].v) || i == 0 && same(s.pts[0].v, nan32) {
				t.Fatalf("step %d: points not minimal: %v", step, s.pts)
			}
		}
	}
}

// TestSeriesMatchesRing drives the encoding and the plain ring with the
// same writes, in order, with gaps longer and shorter than the span,
// out of order, into seconds before the first one, with values that
// change rarely and often (so the series goes dense and comes back), and
// checks every second after every write.
func TestSeriesMatchesRing(t *testing.T) {
	for _, n := range []int64{1, 2, 7, 60, 900} {
		rng := rand.New(rand.NewPCG(uint64(n), 42))
		s := &series{}
		r := newRefRing(n)
		sec := int64(1000)
		vals := []float32{0, 0, 0, 1.5, 50, 3}
		for step := range 6000 {
			// Phases: calm (value rarely changes), busy (changes every
			// second), gaps, out-of-order writes.
			phase := step / 500 % 4
			var v float32
			switch phase {
			case 0, 2:
				v = vals[rng.IntN(3)] // mostly 0
				if rng.IntN(20) == 0 {
					v = vals[rng.IntN(len(vals))]
				}
			default:
				v = float32(rng.IntN(1000)) / 10
			}
			switch x := rng.IntN(100); {
			case x < 3:
				sec += rng.Int64N(3 * n) // a gap, maybe longer than the span
			case x < 15 && phase == 2:
				back := sec - rng.Int64N(n+2) // out of order, maybe too old
				s.set(n, back, v)
				r.set(back, v)
				check(t, step, s, r, n)
				continue
			}
			sec++
			s.set(n, sec, v)
			r.set(sec, v)
			check(t, step, s, r, n)
		}
	}
}

func TestSeriesBeforeFirstSecondAndNaN(t *testing.T) {
	const n = 10
	s := &series{}
	s.set(n, 100, float32(math.NaN())) // nothing to keep
	if s.newest != 0 || s.bytes() != 0 {
		t.Fatalf("a NaN first write kept %+v", s)
	}
	s.set(n, 100, 5)
	s.set(n, 95, 7) // before the first second written, still in the span
	s.set(n, 96, float32(math.NaN()))
	for sec, want := range map[int64]float64{95: 7, 96: -1, 97: -1, 99: -1, 100: 5, 101: -1, 90: -1} {
		got, ok := s.get(n, sec)
		if want < 0 && ok || want >= 0 && (!ok || got != want) {
			t.Fatalf("second %d: %v,%v want %v", sec, got, ok, want)
		}
	}
}

func TestSeriesAdd(t *testing.T) {
	const n = 10
	s := &series{}
	s.add(n, 50, 2)
	s.add(n, 50, 3)
	s.add(n, 52, 1) // 51: no data
	s.add(n, 50, 1) // back into a kept second
	for sec, want := range map[int64]float64{50: 6, 51: -1, 52: 1} {
		got, ok := s.get(n, sec)
		if want < 0 && ok || want >= 0 && (!ok || got != want) {
			t.Fatalf("second %d: %v,%v want %v", sec, got, ok, want)
		}
	}
}

// TestSeriesBytes bounds what a series costs: a constant one a single
// point however long it runs and wraps; one changing every second at most
// the dense ring; and one that calms down returns to points.
func TestSeriesBytes(t *testing.T) {
	const n = 900
	var constant, busy series
	for sec := int64(1); sec <= 5*n; sec++ {
		constant.set(n, sec, 0)
		busy.set(n, sec, float32(sec%97))
	}
	if got := constant.bytes(); got > 8 {
		t.Fatalf("constant series: %d bytes, want one point", got)
	}
	if busy.dense == nil || busy.bytes() > 4*n {
		t.Fatalf("busy series: %d bytes (dense %v), want the %d-byte ring", busy.bytes(), busy.dense != nil, 4*n)
	}
	// Idle again: back to points within two spans.
	for sec := int64(5*n + 1); sec <= 7*n; sec++ {
		busy.set(n, sec, 1)
	}
	if busy.dense != nil || busy.bytes() > 64 {
		t.Fatalf("calmed series: %d bytes (dense %v), want a few points", busy.bytes(), busy.dense != nil)
	}
	// A series changing every few seconds never costs much more than the
	// ring, whatever the phase.
	var sparse series
	worst := 0
	for sec := int64(1); sec <= 5*n; sec++ {
		sparse.set(n, sec, float32(sec/5%2))
		worst = max(worst, sparse.bytes())
	}
	if worst > 4*n+64 {
		t.Fatalf("series changing every 5 s: up to %d bytes, over the %d-byte ring", worst, 4*n)
	}
}

// TestStoreBytesBounded: 2,000 processes with the default span cost a few
// hundred KB of values when idle; the bound on processes holds under churn.
func TestStoreBytesBounded(t *testing.T) {
	s := New(DefaultSpan, DefaultMaxProcesses)
	key := func(i int) string { return "h/" + string(rune('a'+i%26)) + "/" + time.Duration(i).String() }
	for i := range 3 * DefaultMaxProcesses { // churn: a third of them stay
		p := s.Track(key(i), "h", nil)
		for sec := int64(1); sec <= 60; sec++ {
			s.SetScalar(p, policy.MonitorProcessCPU, int64(i)+sec, 0)
			s.SetScalar(p, policy.MonitorProcessThreadCount, int64(i)+sec, 1)
		}
	}
	if len(s.procs) != DefaultMaxProcesses {
		t.Fatalf("%d processes kept, bound %d", len(s.procs), DefaultMaxProcesses)
	}
	total := 0
	for _, p := range s.procs {
		total += p.cpu.bytes() + p.threads.bytes()
	}
	if total > 16*DefaultMaxProcesses {
		t.Fatalf("idle processes: %d bytes of values, want at most 16 per process", total)
	}
}

// BenchmarkHistoryBytes is what the history holds after a full span of a
// host like the e2e one: 700 processes, CPU and thread count every
// second; 80 % idle (constant), 15 % waking every 30 s, 5 % busy (a new
// value every second). The plain rings held 2 x 3,600 bytes per process
// whatever the values (5 MB for these 700).
func BenchmarkHistoryBytes(b *testing.B) {
	const procs = 700
	for range b.N {
		s := New(DefaultSpan, DefaultMaxProcesses)
		ps := make([]*Proc, procs)
		for i := range ps {
			ps[i] = s.Track(time.Duration(i).String(), "h", nil)
		}
		for sec := int64(1); sec <= 2*s.n; sec++ {
			for i, p := range ps {
				cpu, threads := 0.0, 4.0
				switch {
				case i%20 == 0: // busy
					cpu, threads = float64(sec*7%97), float64(8+sec%3)
				case i%20 < 4: // wakes every 30 s
					if sec%30 == 0 {
						cpu = 1
					}
				}
				s.SetScalar(p, policy.MonitorProcessCPU, sec, cpu)
				s.SetScalar(p, policy.MonitorProcessThreadCount, sec, threads)
			}
		}
		total := 0
		for _, p := range ps {
			total += p.cpu.bytes() + p.threads.bytes()
		}
		b.ReportMetric(float64(total)/procs, "value-bytes/proc")
		b.ReportMetric(float64(total)/(1<<20), "value-MB")
	}
}

// BenchmarkDryRun replays a policy over 15 minutes of 2,000 processes
// (the UI's dry-run at the history's bound).
func BenchmarkDryRun(b *testing.B) {
	s := New(DefaultSpan, DefaultMaxProcesses)
	for i := range DefaultMaxProcesses {
		p := s.Track(time.Duration(i).String(), "h", map[string]any{"process.executable.name": "x"})
		for sec := int64(1); sec <= s.n; sec++ {
			v := 0.0
			if i%20 == 0 {
				v = float64(sec * 7 % 97)
			}
			s.SetScalar(p, policy.MonitorProcessCPU, sec, v)
		}
	}
	ps, err := policy.Parse([]byte(`
- name: burn
  target: on_cpu
  items: [{ monitor: process_cpu, threshold: 80, period: 60, count: 30 }]
`), "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		s.DryRun(ps, time.Unix(s.n, 0), DefaultSpan)
	}
}
