// Package flows summarises what a network task reports (per-flow TCP
// metrics and per-peer HTTP histograms, as internal/profiler/netprof emits
// them) into a bounded table of flows, so that the extension can show a
// task's flows and topology without keeping the metrics themselves.
package flows

import (
	"cmp"
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/contprof/contprof/internal/output/attrval"
)

// Names netprof emits (see internal/profiler/netprof/README.md); netprof
// uses these constants.
const (
	MetricIO          = "contprof.network.io"
	MetricRTT         = "contprof.network.rtt"
	MetricRetransmits = "contprof.network.retransmits"
	MetricOpened      = "contprof.network.connections.opened"
	MetricClosed      = "contprof.network.connections.closed"
	MetricActive      = "contprof.network.connection.count"
	MetricHTTPServer  = "http.server.request.duration"
	MetricHTTPClient  = "http.client.request.duration"
	AttrPeerAddress   = "network.peer.address"
	AttrPeerPort      = "network.peer.port"
	AttrLocalPort     = "network.local.port"
	AttrDirection     = "network.io.direction"
	AttrRole          = "contprof.network.role"
	AttrPeerPID       = "contprof.peer.process.pid"
	AttrPeerService   = "service.peer.name"
	AttrStatus        = "http.response.status_code"
	attrPID           = "process.pid"
	attrService       = "service.name"
)

// Key identifies a flow: a local process, its role, the peer endpoint and
// the peer process when it is on this host.
type Key struct {
	PID       int    `json:"pid"`
	Role      string `json:"role"`
	Peer      string `json:"peer"`
	PeerPort  int    `json:"peer_port,omitempty"`
	LocalPort int    `json:"local_port,omitempty"`
	PeerPID   int    `json:"peer_pid,omitempty"`
}

// Flow is one flow summed over a task's report intervals.
type Flow struct {
	Key
	Service     string `json:"service,omitempty"`
	PeerService string `json:"peer_service,omitempty"`
	TxBytes     int64  `json:"tx_bytes"`
	RxBytes     int64  `json:"rx_bytes"`
	Retransmits int64  `json:"retransmits"`
	Opened      int64  `json:"opened"`
	Closed      int64  `json:"closed"`
	// Active is the open connections at the end of the last interval.
	Active int64 `json:"active"`
	// RTT is the mean of the intervals' mean smoothed RTT, seconds.
	RTT  float64 `json:"rtt_seconds,omitempty"`
	rttN int
	// HTTP counts exchanges per role (server: answered, client: sent).
	HTTPRequests int64   `json:"http_requests,omitempty"`
	HTTPErrors   int64   `json:"http_errors,omitempty"`
	HTTPSeconds  float64 `json:"http_seconds,omitempty"`
}

// FromMetrics reads one report interval's flows out of a network task's
// metrics. Points without a peer (HTTP exchanges whose socket was not
// resolved) are left out.
func FromMetrics(md pmetric.Metrics) []Flow {
	byKey := map[Key]*Flow{}
	var order []Key
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		pid, _ := attrval.Int(rm.Resource().Attributes(), attrPID)
		svc := strAttr(rm.Resource().Attributes(), attrService)
		get := func(a pcommon.Map) *Flow {
			peer := strAttr(a, AttrPeerAddress)
			if peer == "" {
				return nil
			}
			k := Key{PID: int(pid), Role: strAttr(a, AttrRole), Peer: peer}
			v, _ := attrval.Int(a, AttrPeerPort)
			k.PeerPort = int(v)
			v, _ = attrval.Int(a, AttrLocalPort)
			k.LocalPort = int(v)
			v, _ = attrval.Int(a, AttrPeerPID)
			k.PeerPID = int(v)
			f := byKey[k]
			if f == nil {
				f = &Flow{Key: k, Service: svc}
				byKey[k] = f
				order = append(order, k)
			}
			if s := strAttr(a, AttrPeerService); s != "" {
				f.PeerService = s
			}
			return f
		}
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				readMetric(ms.At(k), get)
			}
		}
	}
	out := make([]Flow, 0, len(order))
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	return out
}

func readMetric(m pmetric.Metric, get func(pcommon.Map) *Flow) {
	switch m.Name() {
	case MetricIO, MetricRetransmits, MetricOpened, MetricClosed:
		dps := m.Sum().DataPoints()
		eachFlow(dps.Len(), dps.At, get, func(f *Flow, dp pmetric.NumberDataPoint) {
			v := dp.IntValue()
			switch m.Name() {
			case MetricIO:
				if strAttr(dp.Attributes(), AttrDirection) == "transmit" {
					f.TxBytes += v
				} else {
					f.RxBytes += v
				}
			case MetricRetransmits:
				f.Retransmits += v
			case MetricOpened:
				f.Opened += v
			case MetricClosed:
				f.Closed += v
			}
		})
	case MetricActive, MetricRTT:
		dps := m.Gauge().DataPoints()
		eachFlow(dps.Len(), dps.At, get, func(f *Flow, dp pmetric.NumberDataPoint) {
			if m.Name() == MetricActive {
				f.Active = dp.IntValue()
			} else {
				f.RTT = (f.RTT*float64(f.rttN) + dp.DoubleValue()) / float64(f.rttN+1)
				f.rttN++
			}
		})
	case MetricHTTPServer, MetricHTTPClient:
		dps := m.Histogram().DataPoints()
		eachFlow(dps.Len(), dps.At, get, func(f *Flow, dp pmetric.HistogramDataPoint) {
			f.HTTPRequests += int64(dp.Count())
			f.HTTPSeconds += dp.Sum()
			if code, _ := attrval.Int(dp.Attributes(), AttrStatus); code >= 500 {
				f.HTTPErrors += int64(dp.Count())
			}
		})
	}
}

// eachFlow calls add with each of the n points at returns and the flow its
// attributes name; points of no flow are skipped.
func eachFlow[P interface{ Attributes() pcommon.Map }](n int, at func(int) P, get func(pcommon.Map) *Flow, add func(*Flow, P)) {
	for i := 0; i < n; i++ {
		dp := at(i)
		if f := get(dp.Attributes()); f != nil {
			add(f, dp)
		}
	}
}

// Table sums a task's intervals into at most Max flows; flows beyond the
// bound are counted in Dropped.
type Table struct {
	Max     int
	flows   map[Key]*Flow
	order   []Key
	Dropped int
}

// Add merges one interval's flows.
func (t *Table) Add(fs []Flow) {
	if t.flows == nil {
		t.flows = map[Key]*Flow{}
	}
	for _, f := range fs {
		cur := t.flows[f.Key]
		if cur == nil {
			if t.Max > 0 && len(t.flows) >= t.Max {
				t.Dropped++
				continue
			}
			c := f
			t.flows[f.Key] = &c
			t.order = append(t.order, f.Key)
			continue
		}
		cur.TxBytes += f.TxBytes
		cur.RxBytes += f.RxBytes
		cur.Retransmits += f.Retransmits
		cur.Opened += f.Opened
		cur.Closed += f.Closed
		cur.Active = f.Active
		if f.rttN > 0 {
			cur.RTT = (cur.RTT*float64(cur.rttN) + f.RTT*float64(f.rttN)) / float64(cur.rttN+f.rttN)
			cur.rttN += f.rttN
		}
		cur.HTTPRequests += f.HTTPRequests
		cur.HTTPErrors += f.HTTPErrors
		cur.HTTPSeconds += f.HTTPSeconds
		if f.PeerService != "" {
			cur.PeerService = f.PeerService
		}
	}
}

// Len is the number of flows kept.
func (t *Table) Len() int { return len(t.flows) }

// Flows lists the flows, most bytes first.
func (t *Table) Flows() []Flow {
	out := make([]Flow, 0, len(t.order))
	for _, k := range t.order {
		out = append(out, *t.flows[k])
	}
	slices.SortStableFunc(out, func(a, b Flow) int {
		return cmp.Compare(b.TxBytes+b.RxBytes, a.TxBytes+a.RxBytes)
	})
	return out
}

func strAttr(m pcommon.Map, k string) string {
	if v, ok := m.Get(k); ok {
		return v.AsString()
	}
	return ""
}
