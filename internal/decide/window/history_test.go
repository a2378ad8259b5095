package window

import (
	"testing"
	"time"

	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/decide/history"
)

// The history records every monitor of every tracked process, also those
// no policy reads (no window exists for them).
func TestEngineFeedsHistory(t *testing.T) {
	h := history.New(time.Minute, 10)
	e := New(Options{History: h})
	e.SetPolicies([]policy.Policy{onCPU("p", cpuItem(80, 2, 2))})
	now := time.Unix(1000, 0)
	p := e.Put(proc1, map[string]any{"service.name": "a"}, now)
	e.SetCPU(p, 998, 42)
	e.SetThreads(p, 998, 7) // no policy reads threads
	e.AddHTTP(p, 999, "/x", true, 2, 0.2, true)
	e.SetHostLoad(proc1.Host, 999, 1.5, now)
	w, ok := h.Get(proc1.String(), now)
	if !ok {
		t.Fatal("no history for the process")
	}
	got := map[policy.Monitor]float64{}
	for _, s := range w.Series {
		for _, v := range s.Values {
			if v != nil {
				got[s.Monitor] = *v
			}
		}
	}
	want := map[policy.Monitor]float64{
		policy.MonitorProcessCPU: 42, policy.MonitorProcessThreadCount: 7, policy.MonitorSystemLoad: 1.5,
		policy.MonitorHTTPErrorRate: 100, policy.MonitorHTTPAvgResponseTime: 100,
	}
	for m, v := range want {
		if g, ok := got[m]; !ok || g < v-1e-3 || g > v+1e-3 {
			t.Errorf("%s: %v, want %v", m, got[m], v)
		}
	}
}
