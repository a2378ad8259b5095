//go:build linux

package netprof

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/contprof/contprof/bpf/tcpevents"
	"github.com/contprof/contprof/internal/output/flows"
	"github.com/contprof/contprof/internal/output/histogram"
	"github.com/contprof/contprof/internal/output/profiles"
)

// ScopeName is the instrumentation scope of everything a task emits.
const ScopeName = "github.com/contprof/contprof/internal/profiler/netprof"

// Metric and attribute names (see README.md); those the extension's flow
// table reads are defined once, in internal/output/flows.
const (
	MetricDuration    = "contprof.network.connection.duration"
	EventHTTPExchange = "contprof.http.exchange"
	AttrTransport     = "network.transport"
	AttrType          = "network.type"
	AttrMethod        = "http.request.method"
	AttrURLPath       = "url.path"
	AttrHTTPDuration  = "contprof.http.duration"
	AttrHTTPRole      = "contprof.http.role"
)

const (
	directionTransmit      = "transmit"
	directionReceive       = "receive"
	roleNameClient         = "client"
	roleNameServer         = "server"
	roleNameUnknown        = "unknown"
	attrValueTransportTCP  = "tcp"
	attrValueNetworkTypeV4 = "ipv4"
	attrValueNetworkTypeV6 = "ipv6"
)

// flowKey groups connections: one local process, one peer endpoint (a
// client's server port; a server's client address, any port) and, when it
// is on this host, one peer process.
type flowKey struct {
	pid       int
	role      uint8 // tcpevents.Role*
	peer      netip.Addr
	peerPort  uint16 // clients only
	localPort uint16 // servers only
	peerPID   int
}

func flowOf(c *conn) flowKey {
	k := flowKey{pid: c.pid, role: c.role, peer: c.Remote.Addr, peerPID: c.peerPID}
	if c.role == tcpevents.RoleServer {
		k.localPort = c.Local.Port
	} else {
		k.peerPort = c.Remote.Port
	}
	return k
}

type flowAgg struct {
	tx, rx, retrans uint64
	opened, closed  uint64
	active          int64
	rttSum          float64
	rttN            int
	durations       *histogram.Histogram
}

type httpSeriesKey struct {
	flow   flowKey
	known  bool // the socket was resolved to a connection
	role   Role
	method string
	status int
}

// connByInode finds a live or recently closed connection.
func (t *Task) connByInode(ino uint64) *conn {
	if ino == 0 {
		return nil
	}
	if c := t.byInode[ino]; c != nil {
		return c
	}
	if r, ok := t.recent[ino]; ok {
		return r.c
	}
	return nil
}

type recentConn struct {
	c   *conn
	gen uint64
}

func (t *Task) buildMetrics(now time.Time, httpSeries map[httpKey]*histogram.Histogram) pmetric.Metrics {
	aggs := map[flowKey]*flowAgg{}
	get := func(c *conn) *flowAgg {
		k := flowOf(c)
		f := aggs[k]
		if f == nil {
			f = &flowAgg{}
			aggs[k] = f
		}
		return f
	}
	add := func(c *conn, f *flowAgg) {
		f.tx += c.dAcked
		f.rx += c.dReceived
		f.retrans += c.dRetrans
		if c.openedNow {
			f.opened++
		}
		if c.rtt > 0 {
			f.rttSum += float64(c.rtt) / 1e6
			f.rttN++
		}
	}
	for _, c := range t.conns {
		if c.gen != t.gen && !c.openedNow {
			continue
		}
		f := get(c)
		add(c, f)
		f.active++
	}
	for _, c := range t.closedNow {
		f := get(c)
		add(c, f)
		f.closed++
		if c.openNs != 0 && c.closeNs >= c.openNs {
			if f.durations == nil {
				f.durations = histogram.New(connDurationBounds)
			}
			f.durations.Record(float64(c.closeNs-c.openNs) / 1e9)
		}
	}
	series := map[httpSeriesKey]*histogram.Histogram{}
	for hk, h := range httpSeries {
		sk := httpSeriesKey{flow: flowKey{pid: hk.pid}, role: hk.role, method: hk.method, status: hk.status}
		if c := t.connByInode(hk.ino); c != nil && c.pid == hk.pid {
			sk.flow = flowOf(c)
			sk.known = true
		} else {
			t.stats.HTTPUnresolved += h.Count
		}
		if s := series[sk]; s != nil {
			s.Merge(h)
		} else {
			series[sk] = h
		}
	}

	md := pmetric.NewMetrics()
	if len(aggs) == 0 && len(series) == 0 {
		return md
	}
	start := pcommon.NewTimestampFromTime(t.last)
	ts := pcommon.NewTimestampFromTime(now)
	byPID := map[int]pmetric.ScopeMetrics{}
	scope := func(pid int) pmetric.ScopeMetrics {
		if sm, ok := byPID[pid]; ok {
			return sm
		}
		rm := md.ResourceMetrics().AppendEmpty()
		if pr := t.pids[pid]; pr != nil {
			profiles.PutAttributes(rm.Resource().Attributes(), pr.resource)
		} else {
			rm.Resource().Attributes().PutInt("process.pid", int64(pid))
		}
		sm := rm.ScopeMetrics().AppendEmpty()
		sm.Scope().SetName(ScopeName)
		byPID[pid] = sm
		return sm
	}
	keys := make([]flowKey, 0, len(aggs))
	for k := range aggs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareFlows)
	type pidMetrics struct {
		io, retrans, opened, closed, active, rtt, dur pmetric.Metric
	}
	ms := map[int]*pidMetrics{}
	for _, k := range keys {
		f := aggs[k]
		pm := ms[k.pid]
		if pm == nil {
			sm := scope(k.pid)
			pm = &pidMetrics{
				io:      newSum(sm, flows.MetricIO, "Bytes the peer acknowledged (transmit) and bytes received, per flow.", "By"),
				retrans: newSum(sm, flows.MetricRetransmits, "TCP retransmissions (tcp_retransmit_skb events), per flow.", "{retransmit}"),
				opened:  newSum(sm, flows.MetricOpened, "Connections established, per flow.", "{connection}"),
				closed:  newSum(sm, flows.MetricClosed, "Connections closed, per flow.", "{connection}"),
				active:  newGauge(sm, flows.MetricActive, "Open connections at the end of the interval, per flow.", "{connection}"),
				rtt:     newGauge(sm, flows.MetricRTT, "Mean smoothed round-trip time of the flow's connections.", "s"),
				dur:     newHistogramMetric(sm, MetricDuration, "Lifetime of the connections closed in the interval.", "s"),
			}
			ms[k.pid] = pm
		}
		for _, d := range []struct {
			dir string
			v   uint64
		}{{directionTransmit, f.tx}, {directionReceive, f.rx}} {
			dp := pm.io.Sum().DataPoints().AppendEmpty()
			t.pointAttrs(dp.Attributes(), k, true)
			dp.Attributes().PutStr(flows.AttrDirection, d.dir)
			dp.SetStartTimestamp(start)
			dp.SetTimestamp(ts)
			dp.SetIntValue(int64(d.v))
		}
		for _, d := range []struct {
			m pmetric.Metric
			v uint64
		}{{pm.retrans, f.retrans}, {pm.opened, f.opened}, {pm.closed, f.closed}} {
			dp := d.m.Sum().DataPoints().AppendEmpty()
			t.pointAttrs(dp.Attributes(), k, true)
			dp.SetStartTimestamp(start)
			dp.SetTimestamp(ts)
			dp.SetIntValue(int64(d.v))
		}
		dp := pm.active.Gauge().DataPoints().AppendEmpty()
		t.pointAttrs(dp.Attributes(), k, true)
		dp.SetTimestamp(ts)
		dp.SetIntValue(f.active)
		if f.rttN > 0 {
			dp := pm.rtt.Gauge().DataPoints().AppendEmpty()
			t.pointAttrs(dp.Attributes(), k, true)
			dp.SetTimestamp(ts)
			dp.SetDoubleValue(f.rttSum / float64(f.rttN))
		}
		if f.durations != nil {
			putHistogram(pm.dur.Histogram().DataPoints().AppendEmpty(), f.durations, start, ts)
			t.pointAttrs(pm.dur.Histogram().DataPoints().At(pm.dur.Histogram().DataPoints().Len()-1).Attributes(), k, true)
		}
	}
	sks := make([]httpSeriesKey, 0, len(series))
	for k := range series {
		sks = append(sks, k)
	}
	slices.SortFunc(sks, func(a, b httpSeriesKey) int {
		return cmp.Or(compareFlows(a.flow, b.flow), cmp.Compare(a.role, b.role),
			strings.Compare(a.method, b.method), cmp.Compare(a.status, b.status))
	})
	httpMetrics := map[[2]int]pmetric.Metric{} // (pid, role)
	for _, sk := range sks {
		mk := [2]int{sk.flow.pid, int(sk.role)}
		m, ok := httpMetrics[mk]
		if !ok {
			name, desc := flows.MetricHTTPServer, "Duration of HTTP server requests, per peer."
			if sk.role == RoleClient {
				name, desc = flows.MetricHTTPClient, "Duration of HTTP client requests, per peer."
			}
			m = newHistogramMetric(scope(sk.flow.pid), name, desc, "s")
			httpMetrics[mk] = m
		}
		dp := m.Histogram().DataPoints().AppendEmpty()
		putHistogram(dp, series[sk], start, ts)
		t.pointAttrs(dp.Attributes(), sk.flow, sk.known)
		dp.Attributes().PutStr(AttrMethod, sk.method)
		dp.Attributes().PutInt(flows.AttrStatus, int64(sk.status))
	}
	// Metrics are made per process before knowing whether any flow has an
	// RTT or a closed connection: drop those left empty.
	for _, sm := range byPID {
		sm.Metrics().RemoveIf(func(m pmetric.Metric) bool {
			switch m.Type() {
			case pmetric.MetricTypeGauge:
				return m.Gauge().DataPoints().Len() == 0
			case pmetric.MetricTypeHistogram:
				return m.Histogram().DataPoints().Len() == 0
			}
			return false
		})
	}
	return md
}

func compareFlows(a, b flowKey) int {
	return cmp.Or(cmp.Compare(a.pid, b.pid), cmp.Compare(a.role, b.role), a.peer.Compare(b.peer),
		cmp.Compare(a.peerPort, b.peerPort), cmp.Compare(a.localPort, b.localPort), cmp.Compare(a.peerPID, b.peerPID))
}

func newMetric(sm pmetric.ScopeMetrics, name, desc, unit string) pmetric.Metric {
	m := sm.Metrics().AppendEmpty()
	m.SetName(name)
	m.SetDescription(desc)
	m.SetUnit(unit)
	return m
}

func newSum(sm pmetric.ScopeMetrics, name, desc, unit string) pmetric.Metric {
	m := newMetric(sm, name, desc, unit)
	s := m.SetEmptySum()
	s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	s.SetIsMonotonic(true)
	return m
}

func newGauge(sm pmetric.ScopeMetrics, name, desc, unit string) pmetric.Metric {
	m := newMetric(sm, name, desc, unit)
	m.SetEmptyGauge()
	return m
}

func newHistogramMetric(sm pmetric.ScopeMetrics, name, desc, unit string) pmetric.Metric {
	m := newMetric(sm, name, desc, unit)
	m.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	return m
}

func putHistogram(dp pmetric.HistogramDataPoint, h *histogram.Histogram, start, ts pcommon.Timestamp) {
	dp.SetStartTimestamp(start)
	dp.SetTimestamp(ts)
	h.Put(dp)
}

// pointAttrs puts the trigger context and the flow's attributes.
func (t *Task) pointAttrs(m pcommon.Map, k flowKey, known bool) {
	profiles.PutAttributes(m, t.opts.Attributes)
	if !known {
		return
	}
	m.PutStr(AttrTransport, attrValueTransportTCP)
	if k.peer.Is4() {
		m.PutStr(AttrType, attrValueNetworkTypeV4)
	} else {
		m.PutStr(AttrType, attrValueNetworkTypeV6)
	}
	switch k.role {
	case tcpevents.RoleClient:
		m.PutStr(flows.AttrRole, roleNameClient)
	case tcpevents.RoleServer:
		m.PutStr(flows.AttrRole, roleNameServer)
	default:
		m.PutStr(flows.AttrRole, roleNameUnknown)
	}
	m.PutStr(flows.AttrPeerAddress, k.peer.String())
	if k.peerPort != 0 {
		m.PutInt(flows.AttrPeerPort, int64(k.peerPort))
	}
	if k.localPort != 0 {
		m.PutInt(flows.AttrLocalPort, int64(k.localPort))
	}
	if k.peerPID != 0 {
		m.PutInt(flows.AttrPeerPID, int64(k.peerPID))
		if s := t.serviceOf(k.peerPID); s != "" {
			m.PutStr(flows.AttrPeerService, s)
		}
	}
}

func (t *Task) buildLogs(pending []pendingLog) plog.Logs {
	ld := plog.NewLogs()
	byPID := map[int]plog.ScopeLogs{}
	for _, p := range pending {
		sl, ok := byPID[p.ex.PID]
		if !ok {
			rl := ld.ResourceLogs().AppendEmpty()
			if pr := t.pids[p.ex.PID]; pr != nil {
				profiles.PutAttributes(rl.Resource().Attributes(), pr.resource)
			} else {
				rl.Resource().Attributes().PutInt("process.pid", int64(p.ex.PID))
			}
			sl = rl.ScopeLogs().AppendEmpty()
			sl.Scope().SetName(ScopeName)
			byPID[p.ex.PID] = sl
		}
		ex := p.ex
		path, _, _ := strings.Cut(ex.Path, "?")
		lr := sl.LogRecords().AppendEmpty()
		lr.SetEventName(EventHTTPExchange)
		lr.SetTimestamp(pcommon.NewTimestampFromTime(ex.Start.Add(ex.Duration)))
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(p.at))
		if ex.Status >= 500 {
			lr.SetSeverityNumber(plog.SeverityNumberError)
			lr.SetSeverityText("ERROR")
		} else {
			lr.SetSeverityNumber(plog.SeverityNumberWarn)
			lr.SetSeverityText("WARN")
		}
		var peer string
		c := t.connByInode(p.ino)
		if c != nil && c.pid == ex.PID {
			peer = " peer " + netip.AddrPortFrom(c.Remote.Addr, c.Remote.Port).String()
		}
		lr.Body().SetStr(fmt.Sprintf("%s %s %d %.3fms%s", ex.Method, path, ex.Status, float64(ex.Duration)/1e6, peer))
		a := lr.Attributes()
		if c != nil && c.pid == ex.PID {
			t.pointAttrs(a, flowOf(c), true)
			// A log names the exact connection.
			a.PutInt(flows.AttrPeerPort, int64(c.Remote.Port))
		} else {
			profiles.PutAttributes(a, t.opts.Attributes)
		}
		a.PutStr(AttrHTTPRole, ex.Role.String())
		a.PutStr(AttrMethod, ex.Method)
		a.PutStr(AttrURLPath, path)
		a.PutInt(flows.AttrStatus, int64(ex.Status))
		a.PutDouble(AttrHTTPDuration, ex.Duration.Seconds())
	}
	return ld
}

// dropExited forgets the processes that exited (or were removed) once
// their connections are closed, or after maxMissed refreshes: until then
// the close events of their connections still count.
func (t *Task) dropExited() {
	open := map[int]bool{}
	for _, c := range t.conns {
		open[c.pid] = true
	}
	for p, pr := range t.pids {
		if pr.exited != 0 && t.gen > pr.exited && (!open[p] || t.gen-pr.exited > maxMissed) {
			delete(t.pids, p)
		}
	}
}

// endInterval resets what was reported.
func (t *Task) endInterval() {
	for _, c := range t.conns {
		c.dAcked, c.dReceived, c.dRetrans = 0, 0, 0
		c.openedNow = false
	}
	for ino, r := range t.recent {
		if t.gen-r.gen > 2 {
			delete(t.recent, ino)
		}
	}
	t.closedNow = nil
	t.dropExited()
}
