package continuousprofilingprocessor

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/processor/continuousprofilingprocessor/internal/metadatatest"
)

// fakeController stands in for the profilingpolicy extension (another
// component): it publishes policy sets, records task requests and answers
// them with refuse (nil = accept).
type fakeController struct {
	mu     sync.Mutex
	set    *policy.Set
	subs   map[int]func(*policy.Set)
	nsub   int
	reqs   []control.TaskRequest
	refuse func(control.TaskRequest) error
	views  map[int]control.ProcessView
	nview  int
}

func newFakeController(ps ...policy.Policy) *fakeController {
	return &fakeController{
		set:   &policy.Set{Policies: ps, Version: "v1", LoadedAt: time.Now()},
		subs:  map[int]func(*policy.Set){},
		views: map[int]control.ProcessView{},
	}
}

func (f *fakeController) Start(context.Context, component.Host) error { return nil }
func (f *fakeController) Shutdown(context.Context) error              { return nil }

func (f *fakeController) Policies() *policy.Set {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.set
}

func (f *fakeController) Subscribe(fn func(*policy.Set)) func() {
	f.mu.Lock()
	id := f.nsub
	f.nsub++
	f.subs[id] = fn
	s := f.set
	f.mu.Unlock()
	fn(s)
	return func() {
		f.mu.Lock()
		delete(f.subs, id)
		f.mu.Unlock()
	}
}

func (f *fakeController) publish(ps ...policy.Policy) {
	f.mu.Lock()
	f.set = &policy.Set{Policies: ps, Version: "v2", LoadedAt: time.Now()}
	var fns []func(*policy.Set)
	for _, fn := range f.subs {
		fns = append(fns, fn)
	}
	s := f.set
	f.mu.Unlock()
	for _, fn := range fns {
		fn(s)
	}
}

func (f *fakeController) RequestTask(req control.TaskRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	if f.refuse != nil {
		if err := f.refuse(req); err != nil {
			return "", err
		}
	}
	return "task-" + string(rune('a'+len(f.reqs)-1)), nil
}

func (f *fakeController) requests() []control.TaskRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]control.TaskRequest(nil), f.reqs...)
}

func (f *fakeController) RegisterProcessView(v control.ProcessView) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.nview
	f.nview++
	f.views[id] = v
	return func() {
		f.mu.Lock()
		delete(f.views, id)
		f.mu.Unlock()
	}
}

func (f *fakeController) viewCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.views)
}

var policyExtID = component.MustNewID("profilingpolicy")

type fakeHost struct {
	exts map[component.ID]component.Component
}

func (h fakeHost) GetExtensions() map[component.ID]component.Component { return h.exts }

// harness is a started processor with a fake clock.
type harness struct {
	t    *testing.T
	p    *cpProcessor
	proc processor.Metrics
	ctrl *fakeController
	sink *consumertest.MetricsSink
	tel  *componenttest.Telemetry
	logs *observer.ObservedLogs
	mu   sync.Mutex
	now  time.Time
}

// base is the first second fed by tests; the fake wall clock starts there so
// that only data completes seconds unless a test moves the clock.
const base = int64(1_700_000_000)

func newHarness(t *testing.T, cfg *Config, ps ...policy.Policy) *harness {
	t.Helper()
	h := &harness{t: t, ctrl: newFakeController(ps...), sink: new(consumertest.MetricsSink), now: time.Unix(base, 0)}
	h.tel = componenttest.NewTelemetry()
	t.Cleanup(func() { _ = h.tel.Shutdown(context.Background()) })
	if cfg == nil {
		cfg = createDefaultConfig().(*Config)
	}
	set := metadatatest.NewSettings(h.tel)
	core, logs := observer.New(zap.InfoLevel)
	set.Logger = zap.New(core)
	h.logs = logs
	p, err := newProcessor(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.now = h.clock
	h.p = p
	mp, err := createMetricsWith(context.Background(), set, cfg, h.sink, p)
	if err != nil {
		t.Fatal(err)
	}
	h.proc = mp
	host := fakeHost{exts: map[component.ID]component.Component{policyExtID: h.ctrl}}
	if err := mp.Start(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mp.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return h
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *harness) setClock(t time.Time) {
	h.mu.Lock()
	h.now = t
	h.mu.Unlock()
}

func (h *harness) consume(md pmetric.Metrics) {
	h.t.Helper()
	if err := h.proc.ConsumeMetrics(context.Background(), md); err != nil {
		h.t.Fatal(err)
	}
}

// proc describes a process resource.
type proc struct {
	host    string
	pid     int64
	created string
	attrs   map[string]any
}

var checkout = proc{host: "h1", pid: 4242, created: "2026-01-02T03:04:05.5Z", attrs: map[string]any{"service.name": "checkout"}}

func (pr proc) resource(md pmetric.Metrics) pmetric.MetricSlice {
	rm := md.ResourceMetrics().AppendEmpty()
	a := rm.Resource().Attributes()
	a.PutStr("host.name", pr.host)
	a.PutInt("process.pid", pr.pid)
	if pr.created != "" {
		a.PutStr("process.creation.time", pr.created)
	}
	_ = a.FromRaw(merge(a.AsRaw(), pr.attrs))
	return rm.ScopeMetrics().AppendEmpty().Metrics()
}

func merge(a, b map[string]any) map[string]any {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func hostResource(md pmetric.Metrics, host string) pmetric.MetricSlice {
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("host.name", host)
	return rm.ScopeMetrics().AppendEmpty().Metrics()
}

func ts(sec int64) pcommon.Timestamp {
	// mid-second, like a scrape that does not fall on the boundary
	return pcommon.Timestamp(sec*1e9 + 250e6)
}

// gauge adds a gauge metric with one point per value; attrs per point.
func gauge(ms pmetric.MetricSlice, name string, sec int64, v float64, attrs map[string]any) {
	m := ms.AppendEmpty()
	m.SetName(name)
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(ts(sec))
	dp.SetDoubleValue(v)
	_ = dp.Attributes().FromRaw(attrs)
}

// cpuPoints adds process.cpu.utilization at sec, one point per state.
func cpuPoints(ms pmetric.MetricSlice, sec int64, states map[string]float64) {
	m := ms.AppendEmpty()
	m.SetName("process.cpu.utilization")
	m.SetUnit("1")
	dps := m.SetEmptyGauge().DataPoints()
	for st, v := range states {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(ts(sec))
		dp.SetDoubleValue(v)
		dp.Attributes().PutStr("state", st)
	}
}

type httpPoint struct {
	status int64
	path   string // url.path
	route  string // http.route, when set
	count  uint64
	sum    float64 // seconds
}

// httpHist adds an http.server.request.duration histogram at sec.
func httpHist(ms pmetric.MetricSlice, temp pmetric.AggregationTemporality, start, sec int64, pts ...httpPoint) {
	m := ms.AppendEmpty()
	m.SetName("http.server.request.duration")
	m.SetUnit("s")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(temp)
	for _, p := range pts {
		dp := h.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.Timestamp(start * 1e9))
		dp.SetTimestamp(ts(sec))
		dp.SetCount(p.count)
		dp.SetSum(p.sum)
		dp.ExplicitBounds().FromRaw([]float64{0.1, 1})
		dp.BucketCounts().FromRaw([]uint64{0, p.count, 0})
		dp.Attributes().PutStr("http.request.method", "GET")
		dp.Attributes().PutInt("http.response.status_code", p.status)
		if p.path != "" {
			dp.Attributes().PutStr("url.path", p.path)
		}
		if p.route != "" {
			dp.Attributes().PutStr("http.route", p.route)
		}
	}
}
