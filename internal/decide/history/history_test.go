package history

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/control/policy"
)

func TestRingKeepsSpanAndClearsGaps(t *testing.T) {
	s := New(10*time.Second, 4)
	p := s.Track("h/1/0", "h", map[string]any{"service.name": "a"})
	s.SetScalar(p, policy.MonitorProcessCPU, 100, 50)
	s.SetScalar(p, policy.MonitorProcessCPU, 101, 60)
	s.SetScalar(p, policy.MonitorProcessCPU, 115, 70) // 101 falls out, 102..114 empty
	w, ok := s.Get("h/1/0", time.Unix(115, 0))
	if !ok || len(w.Series) != 1 || w.Series[0].Monitor != policy.MonitorProcessCPU {
		t.Fatalf("window %+v", w)
	}
	vals := w.Series[0].Values
	if len(vals) != 10 || vals[9] == nil || *vals[9] != 70 {
		t.Fatalf("last value: %v", vals)
	}
	for i, v := range vals[:9] {
		if v != nil {
			t.Fatalf("second %d: %v, want no data", 106+i, *v)
		}
	}
	s.SetScalar(p, policy.MonitorProcessCPU, 90, 99) // older than kept: ignored
	if v, ok := s.value(p, policy.MonitorProcessCPU, 90); ok {
		t.Fatalf("second 90 kept: %v", v)
	}
}

func TestHTTPValuesInPolicyUnits(t *testing.T) {
	s := New(time.Minute, 4)
	p := s.Track("k", "h", nil)
	s.AddHTTP(p, 10, false, 3, 0.3, true)
	s.AddHTTP(p, 10, true, 1, 0.5, true)
	if v, _ := s.value(p, policy.MonitorHTTPErrorRate, 10); v != 25 {
		t.Fatalf("error rate %v, want 25", v)
	}
	if v, _ := s.value(p, policy.MonitorHTTPAvgResponseTime, 10); math.Abs(v-200) > 1e-3 {
		t.Fatalf("avg %v ms, want 200", v)
	}
}

func TestBoundEvictsOldestAndPrune(t *testing.T) {
	s := New(time.Minute, 2)
	a := s.Track("a", "h", nil)
	s.SetScalar(a, policy.MonitorProcessCPU, 10, 1)
	b := s.Track("b", "h", nil)
	s.SetScalar(b, policy.MonitorProcessCPU, 20, 1)
	s.Track("c", "h", nil)
	if got := strings.Join(s.Keys(), ","); got != "b,c" {
		t.Fatalf("keys %s, want b,c (a had the oldest data)", got)
	}
	// Whoever still holds a forgotten process records nothing into it.
	s.SetScalar(a, policy.MonitorProcessCPU, 11, 1)
	if a.cpu.newest != 0 || a.cpu.bytes() != 0 {
		t.Fatal("a forgotten process still keeps its series")
	}
	s.Prune(time.Unix(200, 0))
	if len(s.Keys()) != 0 {
		t.Fatalf("prune kept %v", s.Keys())
	}
}

func TestDryRunReplaysPoliciesWithSilence(t *testing.T) {
	s := New(15*time.Minute, 10)
	hot := s.Track("hot", "h", map[string]any{"process.executable.name": "hot"})
	cold := s.Track("cold", "h", map[string]any{"process.executable.name": "cold"})
	for sec := int64(1000); sec < 1300; sec++ {
		v := 10.0
		if sec >= 1100 && sec < 1110 || sec >= 1200 && sec < 1210 {
			v = 90
		}
		s.SetScalar(hot, policy.MonitorProcessCPU, sec, v)
		s.SetScalar(cold, policy.MonitorProcessCPU, sec, 5)
	}
	ps, err := policy.Parse([]byte(`
- name: burn
  selector: { process.executable.name: { regex: ".*" } }
  target: on_cpu
  silence: 60s
  items: [{ monitor: process_cpu, threshold: 80, period: 5, count: 3 }]
- name: http
  target: on_cpu
  items: [{ monitor: http_error_rate, threshold: 1, period: 5, count: 1, uri_regex: "^/api" }]
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	runs := s.DryRun(ps, time.Unix(1299, 0), 10*time.Minute)
	if len(runs) != 2 {
		t.Fatalf("runs %+v", runs)
	}
	burn := runs[0]
	if burn.Evaluated != 2 || len(burn.Fired) != 1 || burn.Fired[0].Process != "hot" {
		t.Fatalf("burn: %+v", burn)
	}
	f := burn.Fired[0]
	// Each 10 s burst meets the item from its 3rd second for 10 seconds;
	// the 60 s silence keeps one trigger per burst.
	if f.Triggers != 2 || f.Seconds != 20 || f.First != time.Unix(1103, 0) || len(f.Causes) != 1 || len(f.Causes[0].Values) != 3 {
		t.Fatalf("firing %+v", f)
	}
	// Looking back 60 s sees only the second burst.
	runs = s.DryRun(ps[:1], time.Unix(1299, 0), 100*time.Second)
	if runs[0].Fired[0].Triggers != 1 {
		t.Fatalf("short lookback: %+v", runs[0])
	}
	if len(runs) != 1 || len(s.DryRun(ps, time.Unix(1299, 0), time.Minute)[1].Notes) != 1 {
		t.Fatal("uri filter not reported as not replayable")
	}
}
