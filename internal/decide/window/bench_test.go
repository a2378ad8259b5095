package window

import (
	"strconv"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/control/policy"
)

// benchPolicies: 5 items over 4 monitors with periods up to a minute, and
// thresholds that the benchmark data never reaches (steady state: no task).
func benchPolicies() []policy.Policy {
	return []policy.Policy{{
		Name: "bench", Target: policy.TargetOnCPU,
		Items: []policy.Item{
			{Monitor: policy.MonitorProcessCPU, Threshold: 80, Period: 10, Count: 5},
			{Monitor: policy.MonitorProcessCPU, Threshold: 95, Period: 60, Count: 30},
			{Monitor: policy.MonitorProcessThreadCount, Threshold: 1000, Period: 30, Count: 10},
			{Monitor: policy.MonitorSystemLoad, Threshold: 64, Period: 60, Count: 30},
			{Monitor: policy.MonitorHTTPErrorRate, Threshold: 50, Period: 10, Count: 3, URIRegex: "^/api/"},
		},
	}}
}

func benchEngine(b *testing.B, n int) (*Engine, []*Proc) {
	e := New(Options{MaxProcesses: n, IdleTimeout: time.Hour})
	e.SetPolicies(benchPolicies())
	now := time.Unix(base, 0)
	procs := make([]*Proc, n)
	for i := range procs {
		procs[i] = e.Put(Key{Host: "host-" + strconv.Itoa(i%10), PID: int64(i + 1), Start: 1}, map[string]any{"service.name": "svc"}, now)
	}
	return e, procs
}

// fill writes one second of data for every process.
func fill(e *Engine, procs []*Proc, sec int64, now time.Time) {
	for h := 0; h < 10; h++ {
		e.SetHostLoad("host-"+strconv.Itoa(h), sec, 2, now)
	}
	for _, p := range procs {
		e.Get(p.key, now)
		e.SetCPU(p, sec, 40)
		e.SetThreads(p, sec, 20)
		e.AddHTTP(p, sec, "/api/x", false, 10, 0.5, true)
	}
}

// BenchmarkEvaluate10kProcesses5Items measures one second of judging: every
// process gets a new second of data (not timed) and the engine judges the
// second that completed for all 10,000 processes × 5 items.
func BenchmarkEvaluate10kProcesses5Items(b *testing.B) {
	const n = 10000
	e, procs := benchEngine(b, n)
	sec := base
	// warm up past the longest window so every slot is in use
	for ; sec < base+80; sec++ {
		fill(e, procs, sec, time.Unix(sec, 0))
		e.Advance(time.Unix(sec, 0), true)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		now := time.Unix(sec, 0)
		fill(e, procs, sec, now)
		sec++
		b.StartTimer()
		if trs := e.Advance(now, true); trs != nil {
			b.Fatalf("unexpected trigger %+v", trs[0])
		}
	}
	b.StopTimer()
	if ev := e.Stats().Evaluations; ev < uint64(b.N*n*5) {
		b.Fatalf("only %d item evaluations for %d seconds", ev, b.N)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/second")
}

// BenchmarkIngest measures writing one value into a process window (scalar
// points and HTTP points through a URI filter).
func BenchmarkIngest(b *testing.B) {
	const n = 1000
	e, procs := benchEngine(b, n)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := procs[i%n]
		sec := base + int64(i/n)
		switch i % 3 {
		case 0:
			e.SetCPU(p, sec, 40)
		case 1:
			e.SetThreads(p, sec, 20)
		default:
			e.AddHTTP(p, sec, "/api/x", false, 10, 0.5, true)
		}
	}
}
