// Package histogram is the explicit-bucket histogram the monitors and
// tasks fill between two reports (HTTP request durations, connection
// lifetimes) and write as one OTLP histogram data point.
package histogram

import (
	"sort"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Histogram counts values in buckets: BucketCounts[i] counts values ≤
// Bounds[i] (and > Bounds[i-1]); the last one counts those above every
// bound.
type Histogram struct {
	Bounds        []float64
	Count         uint64
	Sum, Min, Max float64
	BucketCounts  []uint64
}

// New returns an empty histogram over bounds (sorted; not copied).
func New(bounds []float64) *Histogram {
	return &Histogram{Bounds: bounds, BucketCounts: make([]uint64, len(bounds)+1)}
}

// Record counts v.
func (h *Histogram) Record(v float64) {
	if h.Count == 0 || v < h.Min {
		h.Min = v
	}
	if h.Count == 0 || v > h.Max {
		h.Max = v
	}
	h.Count++
	h.Sum += v
	h.BucketCounts[sort.SearchFloat64s(h.Bounds, v)]++
}

// Merge adds o, which has the same bounds, to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.Count == 0 {
		return
	}
	if h.Count == 0 || o.Min < h.Min {
		h.Min = o.Min
	}
	if h.Count == 0 || o.Max > h.Max {
		h.Max = o.Max
	}
	h.Count += o.Count
	h.Sum += o.Sum
	for i, n := range o.BucketCounts {
		h.BucketCounts[i] += n
	}
}

// Put writes h into dp (count, sum, min, max, bounds and buckets).
func (h *Histogram) Put(dp pmetric.HistogramDataPoint) {
	dp.SetCount(h.Count)
	dp.SetSum(h.Sum)
	dp.SetMin(h.Min)
	dp.SetMax(h.Max)
	dp.ExplicitBounds().FromRaw(h.Bounds)
	dp.BucketCounts().FromRaw(h.BucketCounts)
}
