//go:build linux

package httpmon

import (
	"math"
	"sort"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	bpfhttpmon "github.com/contprof/contprof/bpf/httpmon"
	"github.com/contprof/contprof/internal/output/histogram"
)

// Metric names and attribute keys (OpenTelemetry semantic conventions).
const (
	MetricServerDuration = "http.server.request.duration"
	MetricClientDuration = "http.client.request.duration"
	AttrMethod           = "http.request.method"
	AttrStatusCode       = "http.response.status_code"
	AttrURLPath          = "url.path"
)

// Bounds are the explicit bucket bounds, in seconds, that the semantic
// conventions advise for HTTP request durations.
var Bounds = [...]float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// The kernel counts the buckets: as many bounds as it has.
var _ [bpfhttpmon.NumBounds]float64 = Bounds

// Event record layout (bpf/httpmon.Event).
const (
	offDuration = 8
	offStatus   = 24
	offRole     = 26
	offMethod   = 27
	offPathLen  = 28
	offPath     = bpfhttpmon.EventHeadSize
	pathLen     = bpfhttpmon.PathLen
	roleServer  = 1
	roleClient  = 2
)

var methodNames = [...]string{"_OTHER", "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "CONNECT", "TRACE"}

// Histogram is one series' request durations in one interval, in seconds,
// over Bounds.
type Histogram = histogram.Histogram

// Series is the histogram of one (method, status, path) combination.
type Series struct {
	Method string
	Status int
	// Path is url.path without the query string; OtherPath once the
	// process's distinct paths hit the cap; empty for CONNECT.
	Path string
	Histogram
}

// ProcessHTTP is what one process did in one interval.
type ProcessHTTP struct {
	PID int
	// Server are the exchanges the process answered, Client those it made;
	// each sorted by method, status, path.
	Server, Client []Series
}

type seriesKey struct {
	role   uint8
	method uint8
	status uint16
	path   string
}

type procState struct {
	paths   map[string]string // distinct paths seen (interned), kept across intervals
	series  map[seriesKey]*Histogram
	removed bool // no longer monitored: dropped after the next Drain
}

func newProcState() *procState {
	return &procState{paths: map[string]string{}, series: map[seriesKey]*Histogram{}}
}

// aggEntry is one series of a process in one interval as the kernel
// counted it (bpf/httpmon aggs, summed over CPUs), before the path cap.
type aggEntry struct {
	role, method uint8
	status       uint16
	path         []byte // the request target as the kernel cut it
	first        uint64 // completion of its first exchange (CLOCK_MONOTONIC ns)
	h            Histogram
}

// add folds one interval's series into ps. New paths are admitted, up to
// maxPaths distinct paths, in the order their first exchange completed;
// later ones become OtherPath.
func (ps *procState) add(es []aggEntry, maxPaths int) {
	sort.SliceStable(es, func(i, j int) bool { return es[i].first < es[j].first })
	for i := range es {
		e := &es[i]
		if e.role != roleServer && e.role != roleClient {
			continue
		}
		method := e.method
		if int(method) >= len(methodNames) {
			method = 0
		}
		key := seriesKey{role: e.role, method: method, status: e.status}
		if p := urlPath(e.path, method); p != nil {
			if !utf8.Valid(p) {
				p = []byte(strings.ToValidUTF8(string(p), "\uFFFD"))
			}
			// m[string(b)] does not allocate; only a new path is copied.
			if interned, ok := ps.paths[string(p)]; ok {
				key.path = interned
			} else if len(ps.paths) < maxPaths {
				key.path = string(p)
				ps.paths[key.path] = key.path
			} else {
				key.path = OtherPath
			}
		}
		h := ps.series[key]
		if h == nil {
			h = histogram.New(Bounds[:])
			ps.series[key] = h
		}
		h.Merge(&e.h)
	}
}

// entryOf sums what the CPUs counted for key: the series' histogram in
// seconds.
func entryOf(key *bpfhttpmon.AggKey, perCPU []bpfhttpmon.AggValue) aggEntry {
	e := aggEntry{role: key.Role, method: key.Method, status: key.Status, first: math.MaxUint64}
	n := min(int(key.PathLen), pathLen)
	e.path = make([]byte, n)
	for i := range n {
		e.path[i] = byte(key.Path[i])
	}
	h := histogram.New(Bounds[:])
	var sum, lo, hi uint64
	for i := range perCPU {
		v := &perCPU[i]
		if v.Count == 0 {
			continue
		}
		if h.Count == 0 || v.MinNs < lo {
			lo = v.MinNs
		}
		hi = max(hi, v.MaxNs)
		e.first = min(e.first, v.FirstNs)
		h.Count += v.Count
		sum += v.SumNs
		for b, c := range v.Buckets {
			h.BucketCounts[b] += c
		}
	}
	h.Sum, h.Min, h.Max = float64(sum)/1e9, float64(lo)/1e9, float64(hi)/1e9
	e.h = *h
	return e
}

// boundsNs are Bounds in ns for the kernel, which counts a duration of d ns
// in bucket i when d ≤ boundsNs[i]: float64(d)/1e9 ≤ Bounds[i] exactly then
// (TestBoundsNs).
func boundsNs() (ns [bpfhttpmon.NumBounds]uint64) {
	for i, b := range Bounds {
		ns[i] = uint64(math.Round(b * 1e9))
	}
	return ns
}

// urlPath returns the path of a request target: the query string removed
// (the kernel already cuts there), an absolute-form target reduced to its
// path, nil for CONNECT's authority.
func urlPath(t []byte, method uint8) []byte {
	if methodNames[method] == "CONNECT" {
		return nil
	}
	for i, c := range t {
		if c == '?' || c == '#' {
			t = t[:i]
			break
		}
	}
	if len(t) > 0 && t[0] != '/' && t[0] != '*' {
		// absolute-form: scheme://authority/path
		s := string(t)
		if i := strings.Index(s, "://"); i >= 0 {
			rest := t[i+3:]
			for j, c := range rest {
				if c == '/' {
					return rest[j:]
				}
			}
			return []byte("/")
		}
	}
	return t
}

// drain returns the interval's series and starts a new interval; nil when
// there were none.
func (ps *procState) drain(pid int) *ProcessHTTP {
	if len(ps.series) == 0 {
		return nil
	}
	ph := &ProcessHTTP{PID: pid}
	for k, h := range ps.series {
		s := Series{Method: methodNames[k.method], Status: int(k.status), Path: k.path, Histogram: *h}
		if k.role == roleServer {
			ph.Server = append(ph.Server, s)
		} else {
			ph.Client = append(ph.Client, s)
		}
	}
	sortSeries(ph.Server)
	sortSeries(ph.Client)
	clear(ps.series)
	return ph
}

func sortSeries(s []Series) {
	sort.Slice(s, func(i, j int) bool {
		a, b := s[i], s[j]
		if a.Method != b.Method {
			return a.Method < b.Method
		}
		if a.Status != b.Status {
			return a.Status < b.Status
		}
		return a.Path < b.Path
	})
}

// AppendMetrics appends the http.server.request.duration and
// http.client.request.duration histograms of ph (delta temporality, one
// point per series over [start, now]) to sm. A metric without series is
// not appended.
func AppendMetrics(sm pmetric.ScopeMetrics, start, now pcommon.Timestamp, ph *ProcessHTTP) {
	if ph == nil {
		return
	}
	appendHistogram(sm, MetricServerDuration, "Duration of HTTP server requests.", start, now, ph.Server)
	appendHistogram(sm, MetricClientDuration, "Duration of HTTP client requests.", start, now, ph.Client)
}

func appendHistogram(sm pmetric.ScopeMetrics, name, desc string, start, now pcommon.Timestamp, series []Series) {
	if len(series) == 0 {
		return
	}
	m := sm.Metrics().AppendEmpty()
	m.SetName(name)
	m.SetDescription(desc)
	m.SetUnit("s")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dps := h.DataPoints()
	dps.EnsureCapacity(len(series))
	for _, s := range series {
		dp := dps.AppendEmpty()
		dp.SetStartTimestamp(start)
		dp.SetTimestamp(now)
		attrs := dp.Attributes()
		attrs.EnsureCapacity(3)
		attrs.PutStr(AttrMethod, s.Method)
		attrs.PutInt(AttrStatusCode, int64(s.Status))
		if s.Path != "" {
			attrs.PutStr(AttrURLPath, s.Path)
		}
		s.Put(dp)
	}
}

// ErrorRate is the fraction of requests with status ≥ 500 in series,
// NaN when there are none: the http_error_rate monitor's view of a second.
func ErrorRate(series []Series) float64 {
	var all, bad uint64
	for _, s := range series {
		all += s.Count
		if s.Status >= 500 {
			bad += s.Count
		}
	}
	if all == 0 {
		return math.NaN()
	}
	return float64(bad) / float64(all)
}

// MeanDuration is the mean duration in seconds over series, NaN when there
// are none: the http_avg_response_time monitor's view of a second.
func MeanDuration(series []Series) float64 {
	var n uint64
	var sum float64
	for _, s := range series {
		n += s.Count
		sum += s.Sum
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}
