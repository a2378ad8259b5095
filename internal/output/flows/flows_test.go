package flows

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// interval builds what netprof emits for one process: a client flow to a
// peer service (bytes both ways, a retransmit, RTT, HTTP with one 5xx) and
// an HTTP point without a resolved peer.
func interval(tx, rx int64, rtt float64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutInt(attrPID, 42)
	rm.Resource().Attributes().PutStr(attrService, "frontend")
	sm := rm.ScopeMetrics().AppendEmpty()
	flow := func(a pcommon.Map) {
		a.PutStr("contprof.task.id", "t1")
		a.PutStr(AttrRole, "client")
		a.PutStr(AttrPeerAddress, "10.0.0.7")
		a.PutInt(AttrPeerPort, 8080)
		a.PutInt(AttrPeerPID, 99)
		a.PutStr(AttrPeerService, "backend")
	}
	sum := func(name string) pmetric.NumberDataPointSlice {
		m := sm.Metrics().AppendEmpty()
		m.SetName(name)
		return m.SetEmptySum().DataPoints()
	}
	io := sum(MetricIO)
	for dir, v := range map[string]int64{"transmit": tx, "receive": rx} {
		dp := io.AppendEmpty()
		flow(dp.Attributes())
		dp.Attributes().PutStr(AttrDirection, dir)
		dp.SetIntValue(v)
	}
	dp := sum(MetricRetransmits).AppendEmpty()
	flow(dp.Attributes())
	dp.SetIntValue(1)
	dp = sum(MetricOpened).AppendEmpty()
	flow(dp.Attributes())
	dp.SetIntValue(2)
	m := sm.Metrics().AppendEmpty()
	m.SetName(MetricRTT)
	g := m.SetEmptyGauge().DataPoints().AppendEmpty()
	flow(g.Attributes())
	g.SetDoubleValue(rtt)
	m = sm.Metrics().AppendEmpty()
	m.SetName(MetricActive)
	g = m.SetEmptyGauge().DataPoints().AppendEmpty()
	flow(g.Attributes())
	g.SetIntValue(1)
	m = sm.Metrics().AppendEmpty()
	m.SetName(MetricHTTPClient)
	hs := m.SetEmptyHistogram().DataPoints()
	for code, n := range map[int64]uint64{200: 9, 503: 1} {
		h := hs.AppendEmpty()
		flow(h.Attributes())
		h.Attributes().PutInt(AttrStatus, code)
		h.SetCount(n)
		h.SetSum(float64(n) * 0.01)
	}
	h := hs.AppendEmpty() // unresolved socket: no peer
	h.Attributes().PutInt(AttrStatus, 200)
	h.SetCount(5)
	return md
}

func TestFromMetrics(t *testing.T) {
	fs := FromMetrics(interval(1000, 3000, 0.002))
	if len(fs) != 1 {
		t.Fatalf("flows %+v, want one (the unresolved HTTP point has no peer)", fs)
	}
	f := fs[0]
	want := Key{PID: 42, Role: "client", Peer: "10.0.0.7", PeerPort: 8080, PeerPID: 99}
	if f.Key != want || f.Service != "frontend" || f.PeerService != "backend" {
		t.Fatalf("flow %+v", f)
	}
	if f.TxBytes != 1000 || f.RxBytes != 3000 || f.Retransmits != 1 || f.Opened != 2 || f.Active != 1 || f.RTT != 0.002 ||
		f.HTTPRequests != 10 || f.HTTPErrors != 1 || f.HTTPSeconds < 0.0999 || f.HTTPSeconds > 0.1001 {
		t.Fatalf("flow values %+v", f)
	}
}

func TestTableSumsIntervalsWithinBound(t *testing.T) {
	tab := Table{Max: 1}
	tab.Add(FromMetrics(interval(1000, 3000, 0.002)))
	tab.Add(FromMetrics(interval(500, 0, 0.004)))
	other := FromMetrics(interval(1, 1, 0))
	other[0].Peer = "10.0.0.8"
	tab.Add(other)
	fs := tab.Flows()
	if len(fs) != 1 || tab.Dropped != 1 {
		t.Fatalf("flows %+v dropped %d: want 1 kept, 1 dropped", fs, tab.Dropped)
	}
	f := fs[0]
	if f.TxBytes != 1500 || f.RxBytes != 3000 || f.Retransmits != 2 || f.HTTPRequests != 20 || f.RTT < 0.00299 || f.RTT > 0.00301 {
		t.Fatalf("summed flow %+v (RTT is the mean of the intervals')", f)
	}
}
