package continuousprofilingprocessor

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pmetrictest"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/processor/continuousprofilingprocessor/internal/metadatatest"
)

func cpuPolicy(name string, thr float64, period, count int) policy.Policy {
	return policy.Policy{
		Name: name, Target: policy.TargetOnCPU,
		Selector: policy.Selector{"service.name": {Exact: "checkout"}},
		Items:    []policy.Item{{Monitor: policy.MonitorProcessCPU, Threshold: thr, Period: period, Count: count}},
	}
}

func approx(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-9 {
			return false
		}
	}
	return true
}

func TestPassesMetricsThroughUnchanged(t *testing.T) {
	h := newHarness(t, nil, cpuPolicy("p", 80, 5, 3))
	md := pmetric.NewMetrics()
	ms := checkout.resource(md)
	cpuPoints(ms, base, map[string]float64{"user": 0.5, "system": 0.1})
	gauge(ms, "process.memory.usage", base, 1234, nil)
	gauge(hostResource(md, "h1"), "system.cpu.load_average.1m", base, 1.5, nil)
	want := pmetric.NewMetrics()
	md.CopyTo(want)

	h.consume(md)
	if h.proc.Capabilities().MutatesData {
		t.Fatal("processor declares that it mutates data")
	}
	got := h.sink.AllMetrics()
	if len(got) != 1 {
		t.Fatalf("%d batches passed on, want 1", len(got))
	}
	if err := pmetrictest.CompareMetrics(want, got[0]); err != nil {
		t.Fatalf("batch changed: %v", err)
	}
}

func TestCPUUtilizationTriggersTask(t *testing.T) {
	h := newHarness(t, nil, cpuPolicy("checkout-cpu", 80, 5, 3))
	cart := proc{host: "h1", pid: 7, created: checkout.created, attrs: map[string]any{"service.name": "cart"}}
	// per-state utilization summed: 40, 90, 95, 95, 20 percent
	states := []map[string]float64{
		{"user": 0.3, "system": 0.1},
		{"user": 0.5, "system": 0.4},
		{"user": 0.6, "system": 0.35},
		{"user": 0.85, "system": 0.1},
		{"user": 0.2},
	}
	for i, st := range states {
		md := pmetric.NewMetrics()
		cpuPoints(checkout.resource(md), base+int64(i), st)
		cpuPoints(cart.resource(md), base+int64(i), map[string]float64{"user": 0.99}) // selector excludes it
		h.consume(md)
		reqs := h.ctrl.requests()
		// seconds 1, 2, 3 cross: second 3 is judged as soon as its batch is in
		if want := map[bool]int{true: 1, false: 0}[i >= 3]; len(reqs) != want {
			t.Fatalf("after second %d: %d requests, want %d", i, len(reqs), want)
		}
	}
	req := h.ctrl.requests()[0]
	if req.Policy != "checkout-cpu" || req.Target != policy.TargetOnCPU ||
		req.Duration != policy.DefaultDuration || req.Silence != policy.DefaultSilence {
		t.Fatalf("request %+v", req)
	}
	if len(req.Processes) != 1 {
		t.Fatalf("%d processes, want exactly the one", len(req.Processes))
	}
	pr := req.Processes[0]
	wantStart, _ := time.Parse(time.RFC3339Nano, checkout.created)
	if pr.Host != "h1" || pr.PID != 4242 || !pr.StartTime.Equal(wantStart) || pr.Attributes["service.name"] != "checkout" {
		t.Fatalf("process %+v", pr)
	}
	if len(req.Causes) != 1 {
		t.Fatalf("causes %+v", req.Causes)
	}
	c := req.Causes[0]
	if c.Policy != "checkout-cpu" || c.Monitor != policy.MonitorProcessCPU || c.Threshold != 80 || c.Period != 5 || c.Count != 3 ||
		!approx(c.Values, []float64{90, 95, 95}) || !c.At.Equal(time.Unix(base+4, 0)) {
		t.Fatalf("cause %+v", c)
	}
	metadatatest.AssertEqualProcessorContinuousprofilingTriggersRequested(t, h.tel,
		[]metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
}

func TestCPUAsSumWithoutStates(t *testing.T) {
	h := newHarness(t, nil, cpuPolicy("p", 50, 2, 2))
	for i := int64(0); i < 3; i++ {
		md := pmetric.NewMetrics()
		m := checkout.resource(md).AppendEmpty()
		m.SetName("process.cpu.utilization")
		dp := m.SetEmptySum().DataPoints().AppendEmpty()
		dp.SetTimestamp(ts(base + i))
		dp.SetDoubleValue(0.6)
		h.consume(md)
	}
	reqs := h.ctrl.requests()
	if len(reqs) != 1 || !approx(reqs[0].Causes[0].Values, []float64{60, 60}) {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestPIDReuseFromResourceAttributes(t *testing.T) {
	h := newHarness(t, nil, cpuPolicy("p", 80, 5, 3))
	old := checkout
	reused := checkout
	reused.created = "2026-01-02T03:09:00Z"
	send := func(pr proc, sec int64) {
		md := pmetric.NewMetrics()
		cpuPoints(pr.resource(md), sec, map[string]float64{"user": 0.9})
		h.consume(md)
	}
	send(old, base)
	send(old, base+1)
	// the pid is reused by a new process: its seconds must not add to the old ones
	send(reused, base+2)
	send(reused, base+3)
	if n := len(h.ctrl.requests()); n != 0 {
		t.Fatalf("%d requests: windows of two processes with one pid were mixed", n)
	}
	send(reused, base+4)
	send(reused, base+5)
	reqs := h.ctrl.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	want, _ := time.Parse(time.RFC3339, reused.created)
	if !reqs[0].Processes[0].StartTime.Equal(want) {
		t.Fatalf("request for %v, want the new process", reqs[0].Processes[0].StartTime)
	}
}

func TestSystemLoadAppliesToProcessesOfItsHost(t *testing.T) {
	pol := policy.Policy{
		Name: "load", Target: policy.TargetOffCPU,
		Selector: policy.Selector{"service.name": {Regex: "^check"}},
		Items:    []policy.Item{{Monitor: policy.MonitorSystemLoad, Threshold: 4, Period: 3, Count: 2}},
	}
	h := newHarness(t, nil, pol)
	other := proc{host: "h1", pid: 5, created: checkout.created, attrs: map[string]any{"service.name": "checkout-worker"}}
	cart := proc{host: "h1", pid: 6, created: checkout.created, attrs: map[string]any{"service.name": "cart"}}
	remote := proc{host: "h2", pid: 4242, created: checkout.created, attrs: map[string]any{"service.name": "checkout"}}
	for i := int64(0); i < 3; i++ {
		md := pmetric.NewMetrics()
		gauge(hostResource(md, "h1"), "system.cpu.load_average.1m", base+i, 6.5, nil)
		gauge(hostResource(md, "h2"), "system.cpu.load_average.1m", base+i, 0.5, nil)
		for _, pr := range []proc{checkout, other, cart, remote} {
			gauge(pr.resource(md), "process.thread.count", base+i, 10, nil)
		}
		h.consume(md)
	}
	got := map[int]bool{}
	for _, r := range h.ctrl.requests() {
		if r.Processes[0].Host != "h1" || !approx(r.Causes[0].Values, []float64{6.5, 6.5}) {
			t.Errorf("request %+v", r)
		}
		got[r.Processes[0].PID] = true
	}
	if len(got) != 2 || !got[4242] || !got[5] {
		t.Fatalf("requested for pids %v, want 4242 and 5 of h1", got)
	}
	for _, st := range h.p.Processes() {
		if want := map[string]float64{"h1": 6.5, "h2": 0.5}[st.Host]; st.Latest[policy.MonitorSystemLoad] != want {
			t.Errorf("%s latest load %v, want %v", st.Key(), st.Latest[policy.MonitorSystemLoad], want)
		}
	}
}

func TestHTTPErrorRateAndLatency(t *testing.T) {
	errRate := func(thr float64, period, count int, list []string) policy.Item {
		return policy.Item{Monitor: policy.MonitorHTTPErrorRate, Threshold: thr, Period: period, Count: count, URIList: list}
	}
	avgRT := func(thr float64, period, count int, re string) policy.Item {
		return policy.Item{Monitor: policy.MonitorHTTPAvgResponseTime, Threshold: thr, Period: period, Count: count, URIRegex: re}
	}
	// per second: /pay 3 x 500 + 1 x 503 + 2 x 200 + 1 x 499 -> 4/7 errors; /cart 50 x 500
	errSecond := []httpPoint{
		{status: 500, path: "/pay", count: 3, sum: 0.3},
		{status: 503, path: "/pay", count: 1, sum: 0.1},
		{status: 200, path: "/pay", count: 2, sum: 0.2},
		{status: 499, path: "/pay", count: 1, sum: 0.1},
		{status: 500, path: "/cart", count: 50, sum: 5},
	}
	// per second on ^/api/: route /api/{id} (url.path /items/7) 2 in 0.6 s and
	// /api/fast 2 in 0.2 s -> 200 ms; /health 100 in 0 s must not count
	rtSecond := []httpPoint{
		{status: 200, path: "/items/7", route: "/api/{id}", count: 2, sum: 0.6},
		{status: 200, path: "/api/fast", count: 2, sum: 0.2},
		{status: 200, path: "/health", count: 100, sum: 0},
	}
	tests := []struct {
		name       string
		item       policy.Item
		cumulative bool
		second     []httpPoint
		seconds    int
		wantValues []float64 // nil: no request
	}{
		{"error rate on uri_list, delta", errRate(50, 2, 2, []string{"/pay"}), false, errSecond, 3, []float64{400.0 / 7, 400.0 / 7}},
		{"error rate on uri_list, cumulative", errRate(50, 2, 2, []string{"/pay"}), true, errSecond, 4, []float64{400.0 / 7, 400.0 / 7}},
		{"error rate below threshold", errRate(60, 2, 2, []string{"/pay"}), false, errSecond, 4, nil},
		{"errors on a filtered-out path do not count", errRate(50, 2, 2, []string{"/cart-v2", "/home"}), false, errSecond, 4, nil},
		{"error rate over all paths", errRate(90, 2, 2, nil), false, errSecond, 3, []float64{5400.0 / 57, 5400.0 / 57}},
		{"avg latency on uri_regex, http.route preferred, delta", avgRT(200, 3, 2, "^/api/"), false, rtSecond, 3, []float64{200, 200}},
		{"avg latency on uri_regex, cumulative", avgRT(200, 3, 2, "^/api/"), true, rtSecond, 4, []float64{200, 200}},
		{"avg latency over all paths is low", avgRT(10, 3, 2, ""), false, rtSecond, 4, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, policy.Policy{Name: "http", Target: policy.TargetOnCPU, Items: []policy.Item{tc.item}})
			temp := pmetric.AggregationTemporalityDelta
			if tc.cumulative {
				temp = pmetric.AggregationTemporalityCumulative
			}
			for i := 0; i < tc.seconds; i++ {
				pts := make([]httpPoint, len(tc.second))
				copy(pts, tc.second)
				if tc.cumulative { // running totals since the start
					for j := range pts {
						pts[j].count *= uint64(i + 1)
						pts[j].sum *= float64(i + 1)
					}
				}
				md := pmetric.NewMetrics()
				httpHist(checkout.resource(md), temp, base-10, base+int64(i), pts...)
				h.consume(md)
			}
			h.setClock(time.Unix(base+60, 0)) // complete the last second too
			h.p.advance(context.Background(), true)
			reqs := h.ctrl.requests()
			if tc.wantValues == nil {
				if len(reqs) != 0 {
					t.Fatalf("unexpected request %+v", reqs[0].Causes)
				}
				return
			}
			if len(reqs) != 1 || !approx(reqs[0].Causes[0].Values, tc.wantValues) {
				var got any = reqs
				if len(reqs) > 0 {
					got = reqs[0].Causes
				}
				t.Fatalf("got %+v, want one request with values %v", got, tc.wantValues)
			}
		})
	}
}

func TestExponentialHistogramInMilliseconds(t *testing.T) {
	item := policy.Item{Monitor: policy.MonitorHTTPAvgResponseTime, Threshold: 250, Period: 1, Count: 1}
	h := newHarness(t, nil, policy.Policy{Name: "rt", Target: policy.TargetOnCPU, Items: []policy.Item{item}})
	for i := int64(0); i < 2; i++ {
		md := pmetric.NewMetrics()
		m := checkout.resource(md).AppendEmpty()
		m.SetName("http.server.request.duration")
		m.SetUnit("ms")
		eh := m.SetEmptyExponentialHistogram()
		eh.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		dp := eh.DataPoints().AppendEmpty()
		dp.SetTimestamp(ts(base + i))
		dp.SetCount(4)
		dp.SetSum(1200) // ms
		dp.Attributes().PutInt("http.response.status_code", 200)
		h.consume(md)
	}
	reqs := h.ctrl.requests()
	if len(reqs) != 1 || !approx(reqs[0].Causes[0].Values, []float64{300}) {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestPolicyChangeThroughSubscribe(t *testing.T) {
	h := newHarness(t, nil, cpuPolicy("p", 80, 3, 3))
	send := func(sec int64, v float64) {
		md := pmetric.NewMetrics()
		cpuPoints(checkout.resource(md), sec, map[string]float64{"user": v})
		h.consume(md)
	}
	send(base, 0.9)
	send(base+1, 0.9)
	send(base+2, 0.1)
	send(base+3, 0.1)
	if n := len(h.ctrl.requests()); n != 0 {
		t.Fatalf("%d requests before the change", n)
	}
	// a longer period: the window grows keeping seconds 0 and 1
	h.ctrl.publish(cpuPolicy("p", 80, 10, 3))
	send(base+4, 0.9)
	send(base+5, 0.1)
	reqs := h.ctrl.requests()
	if len(reqs) != 1 || !approx(reqs[0].Causes[0].Values, []float64{90, 90, 90}) || reqs[0].Causes[0].Period != 10 {
		t.Fatalf("requests %+v", reqs)
	}
	// the selector no longer matches: nothing more is judged
	other := cpuPolicy("q", 1, 1, 1)
	other.Selector = policy.Selector{"service.name": {Exact: "cart"}}
	h.ctrl.publish(other)
	for i := int64(6); i < 10; i++ {
		send(base+i, 0.99)
	}
	if n := len(h.ctrl.requests()); n != 1 {
		t.Fatalf("%d requests after the selector stopped matching", n)
	}
	st := h.p.Processes()
	if len(st) != 1 || len(st[0].Policies) != 0 {
		t.Fatalf("process view %+v, want no matching policy", st)
	}
}

func TestRefusedRequestsCountedNotRetried(t *testing.T) {
	h := newHarness(t, nil, cpuPolicy("p", 80, 1, 1))
	var until time.Time
	h.ctrl.refuse = func(control.TaskRequest) error {
		until = h.clock().Add(40 * time.Second)
		return &control.RefusedError{Reason: "silenced", Until: until}
	}
	// The condition holds every second for 60 s; the clock keeps pace.
	var at []int64
	for i := int64(0); i < 60; i++ {
		h.setClock(time.Unix(base+i, 500e6))
		before := len(h.ctrl.requests())
		md := pmetric.NewMetrics()
		cpuPoints(checkout.resource(md), base+i, map[string]float64{"user": 0.95})
		h.consume(md)
		if len(h.ctrl.requests()) > before {
			at = append(at, i)
		}
	}
	// refused at 0 until 40: asked again only when the silence ended
	if len(at) != 2 || at[0] != 0 || at[1] != 40 {
		t.Fatalf("requests at seconds %v, want [0 40]", at)
	}
	metadatatest.AssertEqualProcessorContinuousprofilingTriggersRequested(t, h.tel,
		[]metricdata.DataPoint[int64]{{Value: 2}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualProcessorContinuousprofilingTriggersRefused(t, h.tel,
		[]metricdata.DataPoint[int64]{{Value: 2}}, metricdatatest.IgnoreTimestamp())

	// A refusal without an end of silence is retried after refused_retry_interval.
	h2 := newHarness(t, &Config{IdleTimeout: time.Minute, MaxProcesses: 10, CompletionDelay: time.Second, RefusedRetryInterval: 15 * time.Second},
		cpuPolicy("p", 80, 1, 1))
	h2.ctrl.refuse = func(control.TaskRequest) error { return errors.New("no executor for on_cpu") }
	at = nil
	for i := int64(0); i < 40; i++ {
		h2.setClock(time.Unix(base+i, 500e6))
		before := len(h2.ctrl.requests())
		md := pmetric.NewMetrics()
		cpuPoints(checkout.resource(md), base+i, map[string]float64{"user": 0.95})
		h2.consume(md)
		if len(h2.ctrl.requests()) > before {
			at = append(at, i)
		}
	}
	if len(at) != 3 || at[0] != 0 || at[1] != 15 || at[2] != 30 {
		t.Fatalf("requests at seconds %v, want [0 15 30]", at)
	}
}

func TestNetworkTaskCoversServiceInstance(t *testing.T) {
	pol := policy.Policy{
		Name: "net", Target: policy.TargetNetwork, Duration: time.Minute,
		Items: []policy.Item{{Monitor: policy.MonitorProcessThreadCount, Threshold: 100, Period: 2, Count: 2}},
	}
	h := newHarness(t, nil, pol)
	inst := func(pid int64, id string) proc {
		return proc{host: "h1", pid: pid, created: checkout.created, attrs: map[string]any{"service.name": "api", "service.instance.id": id}}
	}
	procs := []proc{inst(1, "api-1"), inst(2, "api-1"), inst(3, "api-2")}
	for i := int64(0); i < 3; i++ {
		md := pmetric.NewMetrics()
		for _, pr := range procs {
			gauge(pr.resource(md), "process.thread.count", base+i, 150, nil)
		}
		h.consume(md)
	}
	reqs := h.ctrl.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want one per service instance", len(reqs))
	}
	for _, r := range reqs {
		if r.Target != policy.TargetNetwork || r.Duration != time.Minute {
			t.Errorf("request %+v", r)
		}
		id := r.Processes[0].Attributes["service.instance.id"]
		want := map[any]int{"api-1": 2, "api-2": 1}[id]
		if len(r.Processes) != want {
			t.Errorf("instance %v: %d processes, want %d", id, len(r.Processes), want)
		}
		for _, p := range r.Processes {
			if p.InstanceKey() != r.Processes[0].InstanceKey() {
				t.Errorf("process of another instance in the request: %v", p.InstanceKey())
			}
		}
	}
}

func TestProcessViewAndLifecycle(t *testing.T) {
	h := newHarness(t, nil, cpuPolicy("p", 80, 5, 3))
	if n := h.ctrl.viewCount(); n != 1 {
		t.Fatalf("%d process views registered, want 1", n)
	}
	md := pmetric.NewMetrics()
	ms := checkout.resource(md)
	cpuPoints(ms, base, map[string]float64{"user": 0.25})
	gauge(ms, "process.thread.count", base, 17, nil)
	httpHist(ms, pmetric.AggregationTemporalityDelta, base-1, base,
		httpPoint{status: 500, path: "/a", count: 1, sum: 0.1}, httpPoint{status: 200, path: "/a", count: 3, sum: 0.3})
	gauge(hostResource(md, "h1"), "system.cpu.load_average.1m", base, 2.5, nil)
	h.consume(md)

	st := h.p.Processes()
	if len(st) != 1 {
		t.Fatalf("%d processes, want 1", len(st))
	}
	s := st[0]
	want := map[policy.Monitor]float64{
		policy.MonitorProcessCPU: 25, policy.MonitorProcessThreadCount: 17, policy.MonitorSystemLoad: 2.5,
		policy.MonitorHTTPErrorRate: 25, policy.MonitorHTTPAvgResponseTime: 100,
	}
	for m, v := range want {
		if math.Abs(s.Latest[m]-v) > 1e-9 {
			t.Errorf("latest %s = %v, want %v", m, s.Latest[m], v)
		}
	}
	if len(s.Policies) != 1 || s.Policies[0] != "p" || s.PID != 4242 || !s.LastSeen.Equal(time.Unix(base, 0)) {
		t.Fatalf("status %+v", s)
	}
	if err := h.proc.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := h.ctrl.viewCount(); n != 0 {
		t.Fatalf("%d process views after shutdown, want 0", n)
	}
	h.ctrl.mu.Lock()
	subs := len(h.ctrl.subs)
	h.ctrl.mu.Unlock()
	if subs != 0 {
		t.Fatalf("%d policy subscriptions after shutdown, want 0", subs)
	}
}

func TestMaxProcessesAndIdle(t *testing.T) {
	cfg := &Config{IdleTimeout: 10 * time.Second, MaxProcesses: 2, CompletionDelay: time.Second, RefusedRetryInterval: time.Minute}
	h := newHarness(t, cfg, cpuPolicy("p", 80, 5, 3))
	send := func(pid int64, sec int64) {
		md := pmetric.NewMetrics()
		pr := checkout
		pr.pid = pid
		cpuPoints(pr.resource(md), sec, map[string]float64{"user": 0.1})
		h.consume(md)
	}
	for pid := int64(1); pid <= 5; pid++ {
		send(pid, base)
	}
	send(4, base+1)
	if n := len(h.p.Processes()); n != 2 {
		t.Fatalf("%d processes tracked, want max_processes=2", n)
	}
	if n := h.logs.FilterMessageSnippet("max_processes reached").Len(); n != 1 {
		t.Fatalf("%d log lines for the limit, want 1", n)
	}
	metadatatest.AssertEqualProcessorContinuousprofilingPointsDropped(t, h.tel,
		[]metricdata.DataPoint[int64]{{Value: 4}}, metricdatatest.IgnoreTimestamp())
	// both go idle; the wall-clock tick drops them
	h.setClock(time.Unix(base+11, 0))
	h.p.advance(context.Background(), true)
	if n := len(h.p.Processes()); n != 0 {
		t.Fatalf("%d processes after idle_timeout, want 0", n)
	}
	send(9, base+12)
	if n := len(h.p.Processes()); n != 1 {
		t.Fatalf("%d processes, want 1", n)
	}
	metadatatest.AssertEqualProcessorContinuousprofilingProcesses(t, h.tel,
		[]metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualProcessorContinuousprofilingWindows(t, h.tel,
		[]metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
}

func TestWallClockCompletesSeconds(t *testing.T) {
	// A source reporting every 10 s that sends the thread count of a
	// second in the batch after its CPU: its batches do not complete a
	// second, the wall clock does.
	cfg := createDefaultConfig().(*Config)
	cfg.CompletionDelay = 2 * time.Second
	h := newHarness(t, cfg, cpuPolicy("p", 80, 30, 2))
	for _, off := range []int64{0, 10} {
		h.setClock(time.Unix(base+off, 300e6))
		md := pmetric.NewMetrics()
		cpuPoints(checkout.resource(md), base+off, map[string]float64{"user": 0.9})
		h.consume(md)
		md = pmetric.NewMetrics()
		gauge(checkout.resource(md), "process.thread.count", base+off, 3, nil)
		h.consume(md)
	}
	if n := len(h.ctrl.requests()); n != 0 {
		t.Fatalf("second %d judged before it completed", base+10)
	}
	h.setClock(time.Unix(base+12, 900e6)) // 10 ends at 11, +2 s delay: not yet
	h.p.advance(context.Background(), true)
	if n := len(h.ctrl.requests()); n != 0 {
		t.Fatal("judged before the completion delay passed")
	}
	h.setClock(time.Unix(base+13, 0))
	h.p.advance(context.Background(), true)
	reqs := h.ctrl.requests()
	if len(reqs) != 1 || !reqs[0].Causes[0].At.Equal(time.Unix(base+11, 0)) {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestEvaluationsTelemetry(t *testing.T) {
	h := newHarness(t, nil, cpuPolicy("p", 80, 5, 3), cpuPolicy("q", 99, 5, 5))
	for i := int64(0); i < 4; i++ {
		md := pmetric.NewMetrics()
		cpuPoints(checkout.resource(md), base+i, map[string]float64{"user": 0.1})
		h.consume(md)
	}
	// seconds 0..3 judged as their batches came in, two items each
	metadatatest.AssertEqualProcessorContinuousprofilingEvaluations(t, h.tel,
		[]metricdata.DataPoint[int64]{{Value: 8}}, metricdatatest.IgnoreTimestamp())
}

func TestStartFailsWithoutPolicyExtension(t *testing.T) {
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.PolicyExtension = component.MustNewIDWithName("profilingpolicy", "missing")
	p, err := f.CreateMetrics(context.Background(), metadatatest.NewSettings(componenttest.NewTelemetry()), cfg, consumertest.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	err = p.Start(context.Background(), fakeHost{exts: map[component.ID]component.Component{policyExtID: newFakeController()}})
	if err == nil || !strings.Contains(err.Error(), "policy_extension") || !strings.Contains(err.Error(), "profilingpolicy/missing") {
		t.Fatalf("error %v, want one naming policy_extension and the id", err)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestStartTimeAttributes(t *testing.T) {
	want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	for _, tc := range []struct {
		key string
		v   any
	}{
		{"process.creation.time", "2026-01-02T03:04:05Z"},
		{"process.start_time", "2026-01-02T03:04:05Z"},
		{"process.start_time", want / 1e9},
		{"process.start_time", want / 1e6},
		{"process.start_time", want},
	} {
		m := pcommon.NewMap()
		_ = m.FromRaw(map[string]any{tc.key: tc.v})
		if got := startTime(m); got != want {
			t.Errorf("%s=%v: %d, want %d", tc.key, tc.v, got, want)
		}
	}
	if got := startTime(pcommon.NewMap()); got != 0 {
		t.Errorf("no attribute: %d", got)
	}
}

// TestConcurrentUse feeds batches from several goroutines while the policy
// set changes and the API reads the process view (run with -race).
func TestConcurrentUse(t *testing.T) {
	h := newHarness(t, nil, cpuPolicy("p", 50, 3, 2))
	var wg sync.WaitGroup
	for g := int64(0); g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr := checkout
			pr.pid = 100 + g
			for i := int64(0); i < 50; i++ {
				md := pmetric.NewMetrics()
				cpuPoints(pr.resource(md), base+i, map[string]float64{"user": 0.7})
				if err := h.proc.ConsumeMetrics(context.Background(), md); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			h.ctrl.publish(cpuPolicy("p", 50, 3+i%5, 2))
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 50; i++ {
			_ = h.p.Processes()
		}
	}()
	wg.Wait()
	got := map[int]int{}
	for _, r := range h.ctrl.requests() {
		got[r.Processes[0].PID]++
	}
	for g := 100; g < 104; g++ {
		if got[g] != 1 {
			t.Errorf("pid %d: %d requests, want 1", g, got[g])
		}
	}
}

// TestFuturePointDoesNotBlindTheProcess: one point stamped a year ahead is
// dropped (and counted) instead of pushing every real second out of the window.
func TestFuturePointDoesNotBlindTheProcess(t *testing.T) {
	h := newHarness(t, nil, cpuPolicy("p", 80, 3, 2))
	md := pmetric.NewMetrics()
	cpuPoints(checkout.resource(md), base+365*24*3600, map[string]float64{"user": 0.9})
	h.consume(md)
	for i := int64(0); i < 3; i++ {
		md := pmetric.NewMetrics()
		cpuPoints(checkout.resource(md), base+i, map[string]float64{"user": 0.9})
		h.consume(md)
	}
	if n := len(h.ctrl.requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	metadatatest.AssertEqualProcessorContinuousprofilingPointsDropped(t, h.tel,
		[]metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
}

// A network task's per-peer HTTP histograms (stamped with its task id)
// repeat requests the process's own histograms count: they must not be
// counted twice.
func TestHTTPOfNetworkTasksNotCountedTwice(t *testing.T) {
	item := policy.Item{Monitor: policy.MonitorHTTPErrorRate, Threshold: 40, Period: 2, Count: 2}
	h := newHarness(t, nil, policy.Policy{Name: "http", Target: policy.TargetOnCPU, Items: []policy.Item{item}})
	for i := int64(0); i < 3; i++ {
		md := pmetric.NewMetrics()
		ms := checkout.resource(md)
		// The process's own view: 1 failure in 4 (25 %).
		httpHist(ms, pmetric.AggregationTemporalityDelta, base+i-1, base+i,
			httpPoint{status: 500, path: "/pay", count: 1, sum: 0.1},
			httpPoint{status: 200, path: "/pay", count: 3, sum: 0.3})
		// A network task's breakdown of the same failure by peer: counted
		// again it would raise the rate to 2/5 = 40 % and trigger.
		httpHist(ms, pmetric.AggregationTemporalityDelta, base+i-1, base+i,
			httpPoint{status: 500, path: "/pay", count: 1, sum: 0.1})
		dps := ms.At(ms.Len() - 1).Histogram().DataPoints()
		dps.At(0).Attributes().PutStr("contprof.task.id", "t1")
		h.consume(md)
	}
	h.setClock(time.Unix(base+60, 0))
	h.p.advance(context.Background(), true)
	if reqs := h.ctrl.requests(); len(reqs) != 0 {
		t.Fatalf("the network task's points were counted: %+v", reqs[0].Causes)
	}
}
