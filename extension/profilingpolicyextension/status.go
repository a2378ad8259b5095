package profilingpolicyextension // import "github.com/contprof/contprof/extension/profilingpolicyextension"

import (
	"net/http"
	"runtime"
	"slices"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/dispatch"
	"github.com/contprof/contprof/internal/control/policysource"
)

// statusView is GET /api/v1/status: what this collector can do, so an
// operator sees a missing privilege without reading the log.
type statusView struct {
	// Executors are the receivers running tasks, each with the privileges
	// and kernel features it found and the targets they disable.
	Executors []control.ExecutorStatus `json:"executors"`
	// PolicySources are the policy sources with their last error.
	PolicySources []policysource.SourceStatus `json:"policy_sources"`
	ActiveTasks   int                         `json:"active_tasks"`
	// Goroutines is the collector's goroutine count: a number that only
	// grows under a steady load is a leak (the soak test watches it).
	Goroutines int `json:"goroutines"`
}

func (e *profilingPolicy) getStatus(w http.ResponseWriter, _ *http.Request) {
	v := statusView{Executors: []control.ExecutorStatus{}, PolicySources: e.merger.Sources(), ActiveTasks: e.tasks.Active(), Goroutines: runtime.NumGoroutine()}
	e.reportersMu.Lock()
	reporters := slices.Clone(e.reporters)
	e.reportersMu.Unlock()
	for _, r := range reporters {
		v.Executors = append(v.Executors, r.r.ExecutorStatus())
	}
	writeJSON(w, http.StatusOK, v)
}

type reporterEntry struct{ r control.StatusReporter }

// trackReporter remembers x for the status endpoint while it is registered.
func (e *profilingPolicy) trackReporter(x dispatch.Executor) (untrack func()) {
	r, ok := x.(control.StatusReporter)
	if !ok {
		return func() {}
	}
	return register(&e.reportersMu, &e.reporters, &reporterEntry{r: r})
}

// coverageKey names one lookback record: a process can have an on_cpu
// and an off_cpu one.
type coverageKey struct {
	pid    int
	target string
}

// lookbackCoverage is what the executors' lookback records hold, by PID
// and target.
func (e *profilingPolicy) lookbackCoverage() map[coverageKey]control.LookbackCoverage {
	e.reportersMu.Lock()
	reporters := slices.Clone(e.reporters)
	e.reportersMu.Unlock()
	out := map[coverageKey]control.LookbackCoverage{}
	for _, r := range reporters {
		if lr, ok := r.r.(control.LookbackReporter); ok {
			for _, c := range lr.LookbackCoverage() {
				out[coverageKey{c.PID, c.Target}] = c
			}
		}
	}
	return out
}
