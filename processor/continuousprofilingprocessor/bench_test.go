package continuousprofilingprocessor

import (
	"context"
	"runtime"
	"strconv"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/processor/continuousprofilingprocessor/internal/metadata"
)

// BenchmarkIngest measures the processor's cost per data point: one batch
// per second from 1,000 processes, each with CPU utilization (2 states), a
// thread count and 4 HTTP histogram points, plus one host load; policies
// read all of them (5 items) and never trigger. Reported: ns/point and
// allocs/point (batch decoding is not included: the batch is reused, only
// its timestamps move on).
func BenchmarkIngest(b *testing.B) {
	for _, temp := range []pmetric.AggregationTemporality{pmetric.AggregationTemporalityDelta, pmetric.AggregationTemporalityCumulative} {
		b.Run(temp.String(), func(b *testing.B) { benchIngest(b, temp) })
	}
}

func benchIngest(b *testing.B, temp pmetric.AggregationTemporality) {
	const nproc = 1000
	set := processortest.NewNopSettings(metadata.Type)
	cfg := createDefaultConfig().(*Config)
	p, err := newProcessor(set, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.tb.Shutdown()
	p.setPolicies(&policy.Set{Policies: []policy.Policy{{
		Name: "bench", Target: policy.TargetOnCPU,
		Items: []policy.Item{
			{Monitor: policy.MonitorProcessCPU, Threshold: 99, Period: 10, Count: 5},
			{Monitor: policy.MonitorProcessThreadCount, Threshold: 10000, Period: 30, Count: 10},
			{Monitor: policy.MonitorSystemLoad, Threshold: 1000, Period: 60, Count: 30},
			{Monitor: policy.MonitorHTTPErrorRate, Threshold: 90, Period: 10, Count: 3, URIRegex: "^/api/"},
			{Monitor: policy.MonitorHTTPAvgResponseTime, Threshold: 5000, Period: 10, Count: 3},
		},
	}}})

	md := pmetric.NewMetrics()
	gauge(hostResource(md, "h1"), "system.cpu.load_average.1m", base, 1.5, nil)
	for i := 0; i < nproc; i++ {
		pr := proc{host: "h1", pid: int64(1000 + i), created: "2026-01-02T03:04:05Z", attrs: map[string]any{"service.name": "svc-" + strconv.Itoa(i%20)}}
		ms := pr.resource(md)
		cpuPoints(ms, base, map[string]float64{"user": 0.2, "system": 0.05})
		gauge(ms, "process.thread.count", base, 12, nil)
		httpHist(ms, temp, base-100, base,
			httpPoint{status: 200, route: "/api/items/{id}", count: 40, sum: 2},
			httpPoint{status: 500, route: "/api/items/{id}", count: 1, sum: 0.1},
			httpPoint{status: 200, route: "/health", count: 5, sum: 0.01},
			httpPoint{status: 404, path: "/favicon.ico", count: 1, sum: 0.001})
	}
	points := md.DataPointCount()
	sec := base
	// step moves every point one second on (cumulative counts grow)
	step := func() {
		sec++
		t := pcommon.Timestamp(sec*1e9 + 250e6)
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			ms := rms.At(i).ScopeMetrics().At(0).Metrics()
			for j := 0; j < ms.Len(); j++ {
				m := ms.At(j)
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					for k := 0; k < m.Gauge().DataPoints().Len(); k++ {
						m.Gauge().DataPoints().At(k).SetTimestamp(t)
					}
				case pmetric.MetricTypeHistogram:
					for k := 0; k < m.Histogram().DataPoints().Len(); k++ {
						dp := m.Histogram().DataPoints().At(k)
						dp.SetTimestamp(t)
						if temp == pmetric.AggregationTemporalityCumulative {
							dp.SetCount(dp.Count() + 7)
							dp.SetSum(dp.Sum() + 0.3)
						}
					}
				}
			}
		}
	}
	ctx := context.Background()
	for i := 0; i < 70; i++ { // fill the windows and the cumulative state
		step()
		if _, err := p.processMetrics(ctx, md); err != nil {
			b.Fatal(err)
		}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		step()
		b.StartTimer()
		if _, err := p.processMetrics(ctx, md); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	n := float64(b.N) * float64(points)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/point")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/point")
	if p.eng.Stats().Processes != nproc {
		b.Fatalf("%d processes tracked", p.eng.Stats().Processes)
	}
}
