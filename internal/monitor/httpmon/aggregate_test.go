package httpmon

import (
	"math"
	"strconv"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	bpfhttpmon "github.com/contprof/contprof/bpf/httpmon"
)

// kernelEntry is one exchange as the kernel counts it (count in
// httpmon.c) on CPU cpu of ncpu, read back as Drain does.
func kernelEntry(role, method uint8, status uint16, path string, dur float64, first uint64, cpu, ncpu int) aggEntry {
	ns := uint64(dur * 1e9)
	key := bpfhttpmon.AggKey{Tgid: 42, Role: role, Method: method, Status: status}
	key.PathLen = uint8(min(len(path), len(key.Path)))
	for i := range int(key.PathLen) {
		key.Path[i] = int8(path[i])
	}
	values := make([]bpfhttpmon.AggValue, ncpu)
	v := &values[cpu]
	v.Count, v.SumNs, v.MinNs, v.MaxNs, v.FirstNs = 1, ns, ns, ns, first
	b, bounds := 0, boundsNs()
	for b < len(bounds) && ns > bounds[b] {
		b++
	}
	v.Buckets[b] = 1
	return entryOf(&key, values)
}

func TestAggregate(t *testing.T) {
	ps := newProcState()
	var seq uint64
	add := func(role, method uint8, status uint16, path string, dur float64) {
		seq++
		ps.add([]aggEntry{kernelEntry(role, method, status, path, dur, seq, int(seq%3), 3)}, 3)
	}
	add(roleServer, 1, 200, "/a", 0.005)                // on a bound: bucket 0
	add(roleServer, 1, 200, "/a?x=1", 0.0051)           // query removed: bucket 1
	add(roleServer, 1, 500, "/a", 20)                   // above every bound
	add(roleServer, 2, 201, "http://h:8080/b/c?q", 0.2) // absolute-form
	add(roleServer, 1, 200, "/d", 0.03)                 // third path
	add(roleServer, 1, 200, "/e", 0.03)                 // over the cap
	add(roleClient, 8, 200, "example.com:443", 1)       // CONNECT: no path
	add(roleClient, 1, 404, "*", 0.001)                 // over the cap
	add(roleClient, 1, 404, "/\xff", 0.001)             // over the cap too
	add(7, 1, 200, "/bad-role", 1)                      // ignored

	ph := ps.drain(42)
	got := map[string]Series{}
	for _, s := range append(ph.Server, ph.Client...) {
		got[s.Method+" "+s.Path+" "+strconv.Itoa(s.Status)] = s
	}
	want := map[string]uint64{
		"GET /a 200": 2, "GET /a 500": 1, "POST /b/c 201": 1, "GET /d 200": 1,
		"GET _other 200": 1, "CONNECT  200": 1, "GET _other 404": 2,
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", keys(got), want)
	}
	for k, n := range want {
		if got[k].Count != n {
			t.Errorf("%s: count %d, want %d", k, got[k].Count, n)
		}
	}
	a := got["GET /a 200"]
	if a.BucketCounts[0] != 1 || a.BucketCounts[1] != 1 || a.Min != 0.005 || math.Abs(a.Max-0.0051) > 1e-12 {
		t.Errorf("GET /a 200: %+v", a.Histogram)
	}
	if e := got["GET /a 500"]; e.BucketCounts[len(Bounds)] != 1 || e.Sum != 20 {
		t.Errorf("GET /a 500: %+v", e.Histogram)
	}
	if len(ph.Server) != 5 || len(ph.Client) != 2 {
		t.Errorf("%d server and %d client series, want 5 and 2", len(ph.Server), len(ph.Client))
	}
	if ps.drain(42) != nil {
		t.Error("second drain returned data")
	}
	// Paths seen stay admitted in the next interval.
	add(roleServer, 1, 200, "/d", 0.01)
	add(roleServer, 1, 200, "/f", 0.01)
	ph = ps.drain(42)
	if len(ph.Server) != 2 || ph.Server[0].Path != "/d" || ph.Server[1].Path != OtherPath {
		t.Errorf("next interval: %+v", ph.Server)
	}

	if r := ErrorRate(append(ph.Server, Series{Status: 503, Histogram: Histogram{Count: 2}})); r != 0.5 {
		t.Errorf("ErrorRate = %v, want 0.5", r)
	}
	if !math.IsNaN(ErrorRate(nil)) || !math.IsNaN(MeanDuration(nil)) {
		t.Error("empty series should give NaN")
	}
}

func keys(m map[string]Series) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestAppendMetrics(t *testing.T) {
	ps := newProcState()
	ps.add([]aggEntry{kernelEntry(roleServer, 1, 200, "/a", 0.03, 1, 0, 1)}, 10)
	ps.add([]aggEntry{kernelEntry(roleServer, 1, 500, "/a", 0.04, 1, 0, 1)}, 10)
	ps.add([]aggEntry{kernelEntry(roleClient, 2, 200, "/up", 0.1, 1, 0, 1)}, 10)
	ph := ps.drain(42)

	md := pmetric.NewMetrics()
	sm := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty()
	start, now := pcommon.Timestamp(1e9), pcommon.Timestamp(2e9)
	AppendMetrics(sm, start, now, ph)
	AppendMetrics(sm, start, now, nil)
	AppendMetrics(sm, start, now, &ProcessHTTP{}) // no series: no metric

	if sm.Metrics().Len() != 2 {
		t.Fatalf("%d metrics, want 2", sm.Metrics().Len())
	}
	wantPoints := map[string]int{MetricServerDuration: 2, MetricClientDuration: 1}
	for i := 0; i < sm.Metrics().Len(); i++ {
		m := sm.Metrics().At(i)
		if m.Unit() != "s" || m.Type() != pmetric.MetricTypeHistogram {
			t.Errorf("%s: unit %q type %v", m.Name(), m.Unit(), m.Type())
		}
		h := m.Histogram()
		if h.AggregationTemporality() != pmetric.AggregationTemporalityDelta {
			t.Errorf("%s: temporality %v", m.Name(), h.AggregationTemporality())
		}
		if h.DataPoints().Len() != wantPoints[m.Name()] {
			t.Errorf("%s: %d points, want %d", m.Name(), h.DataPoints().Len(), wantPoints[m.Name()])
		}
		for j := 0; j < h.DataPoints().Len(); j++ {
			dp := h.DataPoints().At(j)
			if dp.StartTimestamp() != start || dp.Timestamp() != now {
				t.Errorf("%s: times %v..%v", m.Name(), dp.StartTimestamp(), dp.Timestamp())
			}
			if dp.ExplicitBounds().Len() != len(Bounds) || dp.BucketCounts().Len() != len(Bounds)+1 {
				t.Errorf("%s: %d bounds, %d buckets", m.Name(), dp.ExplicitBounds().Len(), dp.BucketCounts().Len())
			}
			var sum uint64
			for _, c := range dp.BucketCounts().AsRaw() {
				sum += c
			}
			if sum != dp.Count() || dp.Count() != 1 {
				t.Errorf("%s: count %d, bucket total %d", m.Name(), dp.Count(), sum)
			}
			attrs := dp.Attributes().AsRaw()
			if len(attrs) != 3 || attrs[AttrMethod] == nil || attrs[AttrStatusCode] == nil || attrs[AttrURLPath] == nil {
				t.Errorf("%s: attributes %v", m.Name(), attrs)
			}
		}
	}
	dp := sm.Metrics().At(0).Histogram().DataPoints().At(1)
	if code, _ := dp.Attributes().Get(AttrStatusCode); code.Int() != 500 || dp.Sum() != 0.04 || dp.BucketCounts().At(3) != 1 {
		t.Errorf("server 500 point: code %v sum %v buckets %v", code.AsRaw(), dp.Sum(), dp.BucketCounts().AsRaw())
	}
}
