// Package benchenv holds what the overhead benchmarks share: sizes read from
// environment variables (so that `make bench` can be shortened), and the
// median of per-round figures (the machines are shared: medians of
// alternating rounds, not means).
package benchenv

import (
	"os"
	"sort"
	"strconv"
	"testing"
	"time"
)

// Int returns the positive integer in environment variable name, or def
// when it is unset; anything else fails tb.
func Int(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// Duration returns the positive duration in environment variable name, or
// def when it is unset; anything else fails tb.
func Duration(tb testing.TB, name string, def time.Duration) time.Duration {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		tb.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}

// Median of v (0 for none); v is not changed.
func Median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
