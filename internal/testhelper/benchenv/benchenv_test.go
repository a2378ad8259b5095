package benchenv

import (
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		v    []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := append([]float64(nil), c.v...)
		if got := Median(c.v); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.v, got, c.want)
		}
		for i := range in {
			if in[i] != c.v[i] {
				t.Errorf("Median changed its input: %v, was %v", c.v, in)
			}
		}
	}
}

func TestEnv(t *testing.T) {
	t.Setenv("BENCHENV_N", "")
	if got := Int(t, "BENCHENV_N", 7); got != 7 {
		t.Errorf("unset: %d, want 7", got)
	}
	t.Setenv("BENCHENV_N", "12")
	if got := Int(t, "BENCHENV_N", 7); got != 12 {
		t.Errorf("12: %d", got)
	}
	t.Setenv("BENCHENV_D", "1500ms")
	if got := Duration(t, "BENCHENV_D", time.Second); got != 1500*time.Millisecond {
		t.Errorf("1500ms: %v", got)
	}
}
