package continuousprofilingprocessor

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/contprof/contprof/internal/control/policy"
)

func threadsPolicy(thr float64) policy.Policy {
	return policy.Policy{
		Name: "threads", Target: policy.TargetOnCPU,
		Selector: policy.Selector{"service.name": {Exact: "checkout"}},
		Items:    []policy.Item{{Monitor: policy.MonitorProcessThreadCount, Threshold: thr, Period: 2, Count: 2}},
	}
}

// Every name in the table feeds its monitor; hostmetrics' process.threads
// is a sum, the semantic convention's process.thread.count a gauge or sum.
func TestThreadCountNames(t *testing.T) {
	for _, name := range []string{"process.thread.count", "process.threads"} {
		h := newHarness(t, nil, threadsPolicy(10))
		for i := int64(0); i < 3; i++ {
			md := pmetric.NewMetrics()
			m := checkout.resource(md).AppendEmpty()
			m.SetName(name)
			dp := m.SetEmptySum().DataPoints().AppendEmpty()
			dp.SetTimestamp(ts(base + i))
			dp.SetIntValue(12)
			h.consume(md)
		}
		reqs := h.ctrl.requests()
		if len(reqs) != 1 || reqs[0].Causes[0].Monitor != policy.MonitorProcessThreadCount || !approx(reqs[0].Causes[0].Values, []float64{12, 12}) {
			t.Errorf("%s: requests %+v", name, reqs)
		}
	}
}

// cpuTime adds a cumulative CPU seconds counter at sec, one point per state.
func cpuTime(ms pmetric.MetricSlice, name string, start, sec int64, states map[string]float64) {
	m := ms.AppendEmpty()
	m.SetName(name)
	m.SetUnit("s")
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for st, v := range states {
		dp := s.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(ts(start))
		dp.SetTimestamp(ts(sec))
		dp.SetDoubleValue(v)
		if st != "" {
			dp.Attributes().PutStr("state", st)
		}
	}
}

// process.cpu.time (hostmetrics' default) and the Collector's own
// otelcol_process_cpu_seconds become percent of the CPUs: the rate between
// scrapes, summed over states, divided by the CPUs.
func TestCPUTimeNames(t *testing.T) {
	defer func(n int) { numCPU = n }(numCPU)
	numCPU = 2
	for _, name := range []string{"process.cpu.time", "otelcol_process_cpu_seconds"} {
		h := newHarness(t, nil, cpuPolicy("p", 50, 2, 2))
		// 1.2 CPU seconds per second over 2 CPUs: 60 %.
		user, sys := 10.0, 5.0
		for i := int64(0); i < 4; i++ {
			md := pmetric.NewMetrics()
			cpuTime(checkout.resource(md), name, base-100, base+i, map[string]float64{"user": user, "system": sys})
			h.consume(md)
			user, sys = user+1.0, sys+0.2
		}
		reqs := h.ctrl.requests()
		if len(reqs) != 1 || !approx(reqs[0].Causes[0].Values, []float64{60, 60}) {
			t.Errorf("%s: requests %+v", name, reqs)
		}
	}
}

// A source that sends both a utilization and a CPU time counter (the
// ebpfprocess receiver, hostmetrics with utilization enabled) is read from
// the utilization only.
func TestUtilizationWinsOverCPUTime(t *testing.T) {
	h := newHarness(t, nil, cpuPolicy("p", 50, 2, 2))
	for i := int64(0); i < 4; i++ {
		md := pmetric.NewMetrics()
		ms := checkout.resource(md)
		cpuPoints(ms, base+i, map[string]float64{"user": 0.1})
		cpuTime(ms, "process.cpu.time", base-100, base+i, map[string]float64{"user": float64(i) * 10})
		h.consume(md)
	}
	if reqs := h.ctrl.requests(); len(reqs) != 0 {
		t.Fatalf("the counter was read as well: %+v", reqs)
	}
}
