package continuousprofilingprocessor // import "github.com/contprof/contprof/processor/continuousprofilingprocessor"

import (
	"context"
	"errors"
	"hash/maphash"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/decide/history"
	"github.com/contprof/contprof/internal/decide/window"
	"github.com/contprof/contprof/internal/output/attrval"
	"github.com/contprof/contprof/internal/periodic"
	"github.com/contprof/contprof/processor/continuousprofilingprocessor/internal/metadata"
)

// Attribute names read by the processor (the metric names are in
// metricSources).
const (
	// attrTaskID marks data a profiling task emitted (trigger context).
	attrTaskID     = "contprof.task.id"
	attrHost       = "host.name"
	attrPID        = "process.pid"
	attrCreated    = "process.creation.time"
	attrStartTime  = "process.start_time"
	attrState      = "state"
	attrCPUMode    = "cpu.mode"
	attrStatusCode = "http.response.status_code"
	attrRoute      = "http.route"
	attrURLPath    = "url.path"
)

// controlPlane is what the processor needs of the profilingpolicy
// extension: the policies as they change, a scheduler for the tasks its
// triggers ask for, and a place to show the processes it watches.
type controlPlane interface {
	control.PolicySubscriber
	control.Scheduler
	control.ProcessViewRegistry
}

type cpProcessor struct {
	cfg    *Config
	logger *zap.Logger
	tb     *metadata.TelemetryBuilder
	now    func() time.Time
	seed   maphash.Seed

	mu  sync.Mutex
	eng *window.Engine
	// hist keeps the last minutes of every monitor of every process for
	// the UI and policy dry-runs (bounded: see internal/decide/history).
	hist *history.Store
	// maxSec is the newest second accepted in the current batch: a point
	// stamped far in the future would otherwise push every real point out
	// of its window.
	maxSec int64
	// tallies already reported to the telemetry counters
	reportedEvals, reportedDropped uint64
	processes, windows             atomic.Int64

	ctrl   controlPlane
	unsub  func()
	unreg  func()
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ control.ProcessView = (*cpProcessor)(nil)

func newProcessor(set processor.Settings, cfg *Config) (*cpProcessor, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	p := &cpProcessor{cfg: cfg, logger: set.Logger, tb: tb, now: time.Now, seed: maphash.MakeSeed()}
	p.hist = history.New(history.DefaultSpan, min(cfg.MaxProcesses, history.DefaultMaxProcesses))
	p.eng = window.New(window.Options{
		History:         p.hist,
		IdleTimeout:     cfg.IdleTimeout,
		MaxProcesses:    cfg.MaxProcesses,
		CompletionDelay: cfg.CompletionDelay,
		RefusedBackoff:  cfg.RefusedRetryInterval,
		GroupKey: func(k window.Key, attrs map[string]any) string {
			return toProcess(k, attrs).InstanceKey()
		},
		OnLimit: func(n int) {
			p.logger.Warn("max_processes reached: data of further processes passes through without evaluation until tracked processes go idle",
				zap.Int("max_processes", n), zap.Duration("idle_timeout", cfg.IdleTimeout))
		},
	})
	err = errors.Join(
		tb.RegisterProcessorContinuousprofilingProcessesCallback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(p.processes.Load())
			return nil
		}),
		tb.RegisterProcessorContinuousprofilingWindowsCallback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(p.windows.Load())
			return nil
		}),
	)
	if err != nil {
		tb.Shutdown()
		return nil, err
	}
	return p, nil
}

func (p *cpProcessor) start(_ context.Context, host component.Host) error {
	ctrl, err := control.Find[controlPlane](host, p.cfg.PolicyExtension)
	if err != nil {
		return err
	}
	p.ctrl = ctrl
	p.unsub = ctrl.Subscribe(p.setPolicies)
	p.unreg = ctrl.RegisterProcessView(p)
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(1)
	go p.tick(ctx)
	return nil
}

func (p *cpProcessor) shutdown(context.Context) error {
	if p.cancel != nil {
		p.cancel()
		p.wg.Wait()
	}
	if p.unsub != nil {
		p.unsub()
	}
	if p.unreg != nil {
		p.unreg()
	}
	p.tb.Shutdown()
	return nil
}

func (p *cpProcessor) setPolicies(s *policy.Set) {
	if s == nil {
		return
	}
	p.mu.Lock()
	p.eng.SetPolicies(s.Policies)
	p.mu.Unlock()
}

// tick completes seconds by the wall clock (for sources that report less
// often than every second) and drops idle processes.
func (p *cpProcessor) tick(ctx context.Context) {
	defer p.wg.Done()
	periodic.Run(ctx, time.Second, func(time.Time) { p.advance(ctx, true) })
}

func (p *cpProcessor) processMetrics(ctx context.Context, md pmetric.Metrics) (pmetric.Metrics, error) {
	now := p.now()
	p.mu.Lock()
	p.maxSec = now.Add(maxClockSkew).Unix()
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		p.ingestResource(rms.At(i), now)
	}
	// A batch carries all the points of a second of a process (our
	// receiver sends each scrape at once): judge that second now, under
	// the same lock, so the wall-clock tick cannot take the batch's
	// seconds first. Sources that split a second across batches are
	// detected by the engine and fall back to completion_delay.
	trs := p.eng.EndBatch(now)
	p.report(ctx, trs, now)
	return md, nil
}

func (p *cpProcessor) advance(ctx context.Context, all bool) {
	now := p.now()
	p.mu.Lock()
	p.report(ctx, p.eng.Advance(now, all), now)
}

// report updates the telemetry and requests the tasks of trs. Called with
// p.mu held, which it releases.
func (p *cpProcessor) report(ctx context.Context, trs []window.Trigger, now time.Time) {
	st := p.eng.Stats()
	evals, dropped := st.Evaluations-p.reportedEvals, st.Dropped-p.reportedDropped
	p.reportedEvals, p.reportedDropped = st.Evaluations, st.Dropped
	p.mu.Unlock()
	p.processes.Store(int64(st.Processes))
	p.windows.Store(int64(st.Windows))
	if evals > 0 {
		p.tb.ProcessorContinuousprofilingEvaluations.Add(ctx, int64(evals))
	}
	if dropped > 0 {
		p.tb.ProcessorContinuousprofilingPointsDropped.Add(ctx, int64(dropped))
	}
	for i := range trs {
		p.request(ctx, &trs[i], now)
	}
}

// request asks the controller for the task of a trigger, outside the lock:
// the controller may take its time or call back into the view.
func (p *cpProcessor) request(ctx context.Context, t *window.Trigger, now time.Time) {
	if p.ctrl == nil {
		return
	}
	req := toRequest(t)
	id, err := p.ctrl.RequestTask(req)
	p.tb.ProcessorContinuousprofilingTriggersRequested.Add(ctx, 1)
	var until time.Time
	if err != nil {
		p.tb.ProcessorContinuousprofilingTriggersRefused.Add(ctx, 1)
		var re *control.RefusedError
		if errors.As(err, &re) {
			until = re.Until
		}
		p.logger.Info("profiling task refused",
			zap.String("policy", req.Policy), zap.String("process", req.Processes[0].Key()),
			zap.Time("silenced_until", until), zap.Error(err))
	} else {
		p.logger.Info("profiling task requested",
			zap.String("task", id), zap.String("policy", req.Policy), zap.String("target", string(req.Target)),
			zap.String("process", req.Processes[0].Key()), zap.Int("processes", len(req.Processes)),
			zap.String("monitor", string(req.Causes[0].Monitor)), zap.Float64s("values", req.Causes[0].Values))
	}
	p.mu.Lock()
	p.eng.Resolve(t, now, err == nil, until)
	p.mu.Unlock()
}

func toProcess(k window.Key, attrs map[string]any) control.Process {
	pr := control.Process{Host: k.Host, PID: int(k.PID), Attributes: attrs}
	if k.Start != 0 {
		pr.StartTime = time.Unix(0, k.Start).UTC()
	}
	return pr
}

func toRequest(t *window.Trigger) control.TaskRequest {
	pol := t.Policy
	req := control.TaskRequest{
		Policy:   pol.Name,
		Target:   pol.Target,
		Duration: pol.Duration,
		Silence:  pol.Silence,
	}
	if req.Duration <= 0 {
		req.Duration = policy.DefaultDuration
	}
	if req.Silence <= 0 {
		req.Silence = policy.DefaultSilence
	}
	for _, pi := range t.Processes {
		req.Processes = append(req.Processes, toProcess(pi.Key, pi.Attrs))
	}
	for _, c := range t.Causes {
		req.Causes = append(req.Causes, control.Cause{
			Policy:    pol.Name,
			ItemIndex: c.ItemIndex,
			Monitor:   c.Item.Monitor,
			Threshold: c.Item.Threshold,
			Period:    c.Item.Period,
			Count:     c.Item.Count,
			Values:    c.Values,
			URIRegex:  c.Item.URIRegex,
			URIList:   c.Item.URIList,
			At:        t.At,
		})
	}
	return req
}

// Processes implements control.ProcessView.
func (p *cpProcessor) Processes() []control.ProcessStatus {
	p.mu.Lock()
	snap := p.eng.Snapshot()
	p.mu.Unlock()
	out := make([]control.ProcessStatus, 0, len(snap))
	for _, s := range snap {
		out = append(out, control.ProcessStatus{
			Process:  toProcess(s.Key, s.Attrs),
			Policies: s.Policies,
			Latest:   s.Latest,
			LastSeen: s.LastData,
		})
	}
	return out
}

// ingestResource feeds the windows from one resource's metrics. Called with
// p.mu held.
func (p *cpProcessor) ingestResource(rm pmetric.ResourceMetrics, now time.Time) {
	attrs := rm.Resource().Attributes()
	hostName := ""
	if v, ok := attrs.Get(attrHost); ok {
		hostName = v.AsString()
	}
	var proc *window.Proc
	pid, isProcess := attrval.Int(attrs, attrPID)
	if isProcess {
		k := window.Key{Host: hostName, PID: pid, Start: startTime(attrs)}
		proc = p.eng.Get(k, now)
		// Refresh only when attributes were added (an enriching processor
		// caught up); two sources describing one process differently must
		// not flap the selector matching.
		if proc == nil || proc.NumAttrs() < attrs.Len() {
			proc = p.eng.Put(k, attrs.AsRaw(), now)
		}
	}
	sms := rm.ScopeMetrics()
	// Whether the resource also carries a utilization is only asked (one
	// more pass over its metrics) when a CPU time counter is met.
	utilKnown, util := false, false
	for i := 0; i < sms.Len(); i++ {
		ms := sms.At(i).Metrics()
		for j := 0; j < ms.Len(); j++ {
			m := ms.At(j)
			kind := metricSources[m.Name()]
			if isProcess && proc == nil && kind.perProcess() {
				p.eng.Drop(pointCount(m)) // max_processes reached
				continue
			}
			switch kind {
			case kindLoad:
				p.ingestLoad(hostName, m, now)
			case kindCPUUtil:
				if proc != nil {
					p.ingestCPU(proc, m)
				}
			case kindCPUTime:
				if proc == nil {
					break
				}
				if !utilKnown {
					utilKnown, util = true, hasCPUUtil(sms)
				}
				if !util {
					p.ingestCPUTime(proc, m)
				}
			case kindThreads:
				if proc != nil {
					p.ingestThreads(proc, m)
				}
			case kindHTTP:
				if proc != nil {
					p.ingestHTTP(proc, m)
				}
			}
		}
	}
}

func numberPoints(m pmetric.Metric) pmetric.NumberDataPointSlice {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints()
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints()
	}
	return pmetric.NewNumberDataPointSlice()
}

func pointCount(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	}
	return numberPoints(m).Len()
}

func numberValue(dp pmetric.NumberDataPoint) float64 {
	if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
		return float64(dp.IntValue())
	}
	return dp.DoubleValue()
}

// maxClockSkew is how far ahead of this collector's clock a point may be.
const maxClockSkew = 10 * time.Minute

// second is the unix second of ts, or 0 (not a time: the engine drops and
// counts the point) when ts is too far in the future.
func (p *cpProcessor) second(ts pcommon.Timestamp) int64 {
	s := int64(ts) / 1e9
	if s > p.maxSec {
		return 0
	}
	return s
}

// ingestCPU reads process.cpu.utilization (0..1) as percent. Points with a
// state (or cpu.mode) attribute are the parts of one utilization: the
// states of one timestamp are summed.
func (p *cpProcessor) ingestCPU(proc *window.Proc, m pmetric.Metric) {
	dps := numberPoints(m)
	type acc struct {
		ts  pcommon.Timestamp
		sum float64
	}
	var buf [8]acc
	n := 0
	flush := func() {
		for _, a := range buf[:n] {
			p.eng.SetCPU(proc, p.second(a.ts), a.sum*100)
		}
		n = 0
	}
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		v := numberValue(dp)
		_, hasState := dp.Attributes().Get(attrState)
		if !hasState {
			_, hasState = dp.Attributes().Get(attrCPUMode)
		}
		if !hasState {
			p.eng.SetCPU(proc, p.second(dp.Timestamp()), v*100)
			continue
		}
		found := false
		for k := range buf[:n] {
			if buf[k].ts == dp.Timestamp() {
				buf[k].sum += v
				found = true
				break
			}
		}
		if !found {
			if n == len(buf) {
				flush()
			}
			buf[n] = acc{dp.Timestamp(), v}
			n++
		}
	}
	flush()
}

func (p *cpProcessor) ingestThreads(proc *window.Proc, m pmetric.Metric) {
	dps := numberPoints(m)
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		p.eng.SetThreads(proc, p.second(dp.Timestamp()), numberValue(dp))
	}
}

func (p *cpProcessor) ingestLoad(hostName string, m pmetric.Metric, now time.Time) {
	dps := numberPoints(m)
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		p.eng.SetHostLoad(hostName, p.second(dp.Timestamp()), numberValue(dp), now)
	}
}

// durationScale converts the histogram's unit to seconds (the semantic
// convention is "s"; older instrumentations used "ms").
func durationScale(unit string) float64 {
	switch unit {
	case "ms":
		return 1e-3
	case "us", "µs":
		return 1e-6
	}
	return 1
}

// ingestHTTP reads http.server.request.duration histograms (explicit or
// exponential buckets, delta or cumulative): per point the request count,
// whether they failed (status >= 500) and their total duration.
func (p *cpProcessor) ingestHTTP(proc *window.Proc, m pmetric.Metric) {
	scale := durationScale(m.Unit())
	switch m.Type() {
	case pmetric.MetricTypeHistogram:
		h := m.Histogram()
		addHTTPPoints(p, proc, h.AggregationTemporality(), h.DataPoints().Len(), h.DataPoints().At, scale)
	case pmetric.MetricTypeExponentialHistogram:
		h := m.ExponentialHistogram()
		addHTTPPoints(p, proc, h.AggregationTemporality(), h.DataPoints().Len(), h.DataPoints().At, scale)
	}
}

// histogramPoint is what ingestHTTP reads of a histogram point, explicit or
// exponential.
type histogramPoint interface {
	Attributes() pcommon.Map
	StartTimestamp() pcommon.Timestamp
	Timestamp() pcommon.Timestamp
	Count() uint64
	Sum() float64
	HasSum() bool
}

// addHTTPPoints adds the n points at returns to proc.
func addHTTPPoints[P histogramPoint](p *cpProcessor, proc *window.Proc, temporality pmetric.AggregationTemporality, n int, at func(int) P, scale float64) {
	cum := temporality == pmetric.AggregationTemporalityCumulative
	for i := 0; i < n; i++ {
		dp := at(i)
		p.addHTTP(proc, cum, dp.Attributes(), dp.StartTimestamp(), dp.Timestamp(), dp.Count(), dp.Sum(), dp.HasSum(), scale)
	}
}

func (p *cpProcessor) addHTTP(proc *window.Proc, cumulative bool, attrs pcommon.Map, start, ts pcommon.Timestamp, count uint64, sum float64, hasSum bool, scale float64) {
	if _, ok := attrs.Get(attrTaskID); ok {
		// A network task's per-peer breakdown of requests the process's
		// own histograms already count.
		return
	}
	if cumulative {
		var ok bool
		count, sum, ok = proc.Cumulative(p.seriesHash(attrs), int64(start), int64(ts), count, sum)
		if !ok {
			return
		}
	}
	if count == 0 {
		return
	}
	code, _ := attrval.Int(attrs, attrStatusCode)
	path := ""
	if v, ok := attrs.Get(attrRoute); ok && v.Type() == pcommon.ValueTypeStr {
		path = v.Str()
	} else if v, ok := attrs.Get(attrURLPath); ok && v.Type() == pcommon.ValueTypeStr {
		path = v.Str()
	}
	p.eng.AddHTTP(proc, p.second(ts), path, code >= 500, float64(count), sum*scale, hasSum)
}

// seriesHash identifies a histogram series of a process by its attributes.
func (p *cpProcessor) seriesHash(attrs pcommon.Map) uint64 {
	var h maphash.Hash
	h.SetSeed(p.seed)
	// attribute order is not significant: combine per-attribute hashes
	var x uint64
	for k, v := range attrs.All() {
		h.Reset()
		h.WriteString(k)
		h.WriteByte(0)
		switch v.Type() {
		case pcommon.ValueTypeStr:
			h.WriteString(v.Str())
		case pcommon.ValueTypeInt:
			var b [8]byte
			u := uint64(v.Int())
			for i := range b {
				b[i] = byte(u >> (8 * i))
			}
			h.Write(b[:])
		default:
			h.WriteString(v.AsString())
		}
		x ^= h.Sum64()
	}
	return x
}

// startTime returns the process start time in unix nanoseconds from
// process.creation.time (ISO 8601) or process.start_time (ISO 8601, or a
// number of seconds, milliseconds, microseconds or nanoseconds since the
// epoch); 0 when neither is present.
func startTime(attrs pcommon.Map) int64 {
	for _, key := range [...]string{attrCreated, attrStartTime} {
		v, ok := attrs.Get(key)
		if !ok {
			continue
		}
		switch v.Type() {
		case pcommon.ValueTypeStr:
			if t, err := time.Parse(time.RFC3339Nano, v.Str()); err == nil {
				return t.UnixNano()
			}
			if n, err := strconv.ParseFloat(v.Str(), 64); err == nil {
				return epochNanos(n)
			}
		case pcommon.ValueTypeInt:
			return epochNanos(float64(v.Int()))
		case pcommon.ValueTypeDouble:
			return epochNanos(v.Double())
		}
	}
	return 0
}

func epochNanos(n float64) int64 {
	switch a := math.Abs(n); {
	case a >= 1e17:
		return int64(n)
	case a >= 1e14:
		return int64(n * 1e3)
	case a >= 1e11:
		return int64(n * 1e6)
	}
	return int64(n * 1e9)
}
