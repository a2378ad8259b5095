package histogram

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

func TestRecordMergePut(t *testing.T) {
	a, b := New([]float64{1, 2}), New([]float64{1, 2})
	for _, v := range []float64{0.5, 1, 1.5} {
		a.Record(v)
	}
	b.Record(3)
	a.Merge(b)
	a.Merge(New([]float64{1, 2})) // empty: no change
	if a.Count != 4 || a.Sum != 6 || a.Min != 0.5 || a.Max != 3 {
		t.Fatalf("count %d sum %v min %v max %v, want 4 6 0.5 3", a.Count, a.Sum, a.Min, a.Max)
	}
	if got := a.BucketCounts; got[0] != 2 || got[1] != 1 || got[2] != 1 {
		t.Fatalf("buckets %v, want [2 1 1] (≤1, ≤2, above)", got)
	}
	dp := pmetric.NewHistogramDataPoint()
	a.Put(dp)
	if dp.Count() != 4 || dp.Sum() != 6 || dp.Min() != 0.5 || dp.Max() != 3 ||
		dp.ExplicitBounds().Len() != 2 || dp.BucketCounts().Len() != 3 || dp.BucketCounts().At(2) != 1 {
		t.Fatalf("data point: count %d sum %v min %v max %v bounds %v buckets %v",
			dp.Count(), dp.Sum(), dp.Min(), dp.Max(), dp.ExplicitBounds().AsRaw(), dp.BucketCounts().AsRaw())
	}
}
