package profilingpolicyextension // import "github.com/contprof/contprof/extension/profilingpolicyextension"

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/decide/history"
	"github.com/contprof/contprof/internal/output/flame"
	"github.com/contprof/contprof/internal/output/flows"
)

// uiRoutes are the JSON endpoints only the web pages use (the pages
// themselves are ui.Register's).
func (e *profilingPolicy) uiRoutes() []route {
	return []route{
		{http.MethodGet, "/api/v1/tasks/{id}/flame", e.getFlame},
		{http.MethodGet, "/api/v1/tasks/{id}/flows", e.getFlows},
		{http.MethodGet, "/api/v1/processes/history", e.getHistory},
		{http.MethodGet, "/api/v1/policies/document", e.getPolicyDocument},
		{http.MethodPost, "/api/v1/policies/dryrun", e.postDryRun},
	}
}

// getFlame answers the flame tree of a task's stored profile: the whole
// task, or one report interval with ?interval=<unix seconds>.
func (e *profilingPolicy) getFlame(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t, ok := e.task(w, id)
	if !ok {
		return
	}
	var opt flame.Options
	if s := r.URL.Query().Get("interval"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("interval: %q is not a unix time in seconds", s))
			return
		}
		opt.Interval = time.Unix(sec, 0)
	}
	p, intervals, ok := e.tasks.NeutralProfile(id)
	if !ok {
		writeNoProfile(w, t)
		return
	}
	tree, err := flame.FromProfile(p, intervals, opt)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, tree)
}

// getFlows answers a network task's flows summed over its report
// intervals (bounded: see taskcontrol).
func (e *profilingPolicy) getFlows(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t, ok := e.task(w, id)
	if !ok {
		return
	}
	fs, dropped, ok := e.tasks.Flows(id)
	if !ok {
		if t.Target != policy.TargetNetwork {
			writeError(w, http.StatusNotFound, fmt.Sprintf("task %q is a %s task: only network tasks have flows", id, t.Target))
			return
		}
		fs = []flows.Flow{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"flows": fs, "dropped": dropped})
}

// histories are the registered process views that keep history.
func (e *profilingPolicy) histories() []control.ProcessHistory {
	e.viewsMu.Lock()
	defer e.viewsMu.Unlock()
	var out []control.ProcessHistory
	for _, v := range e.views {
		if h, ok := v.v.(control.ProcessHistory); ok {
			out = append(out, h)
		}
	}
	return out
}

func (e *profilingPolicy) getHistory(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	if key == "" {
		writeError(w, http.StatusBadRequest, "key: is required (a process key as /api/v1/processes lists it: host/pid/start)")
		return
	}
	hs := e.histories()
	if len(hs) == 0 {
		writeError(w, http.StatusNotFound, "no process history is available (is the continuousprofiling processor running?)")
		return
	}
	for _, h := range hs {
		if win, ok := h.History(key); ok {
			writeJSON(w, http.StatusOK, win)
			return
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no history for process %q (kept %s after its last data)", key, hs[0].HistorySpan()))
}

// getPolicyDocument answers the policies in force as a YAML document the
// editor starts from.
func (e *profilingPolicy) getPolicyDocument(w http.ResponseWriter, _ *http.Request) {
	set := e.Policies()
	// Through JSON so durations read "30s" and matchers stay compact.
	js, err := json.Marshal(map[string]any{"policies": set.Policies})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	var tree any
	if err := json.Unmarshal(js, &tree); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out, err := yaml.Marshal(tree)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(out)
}

// dryRunView is the answer of POST /api/v1/policies/dryrun.
type dryRunView struct {
	Valid bool `json:"valid"`
	// Errors are the validation errors, one per problem, worded as the
	// policy sources report them.
	Errors []string `json:"errors,omitempty"`
	// Lookback is the replayed span; HistorySpan what the processor keeps.
	Lookback    string          `json:"lookback,omitempty"`
	HistorySpan string          `json:"history_span,omitempty"`
	Policies    []dryPolicyView `json:"policies,omitempty"`
	Note        string          `json:"note,omitempty"`
}

type dryPolicyView struct {
	Name   string        `json:"name"`
	Target policy.Target `json:"target"`
	// Selects are the monitored processes the selector matches now.
	Selects   []control.Process `json:"selects"`
	Fired     []history.Firing  `json:"fired"`
	Evaluated int               `json:"evaluated"`
	Notes     []string          `json:"notes,omitempty"`
}

const maxDryRunLookback = 24 * time.Hour

// postDryRun validates a policy document (YAML or JSON, the body) with the
// one policy decoder, and replays it on the processor's history: which
// monitored processes each policy selects now and which it would have
// triggered on in the last ?minutes= (default 15). It starts nothing.
func (e *profilingPolicy) postDryRun(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	doc, err := io.ReadAll(r.Body)
	if err != nil {
		if big := tooLarge(err); big != nil {
			writeError(w, http.StatusRequestEntityTooLarge, big.Error())
			return
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	lookback := 15 * time.Minute
	if s := r.URL.Query().Get("minutes"); s != "" {
		m, err := strconv.Atoi(s)
		if err != nil || m < 1 || time.Duration(m)*time.Minute > maxDryRunLookback {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("minutes: %q is not a number of minutes in 1..%d", s, int(maxDryRunLookback/time.Minute)))
			return
		}
		lookback = time.Duration(m) * time.Minute
	}
	ps, err := policy.Parse(doc, "")
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, dryRunView{Errors: splitErrors(err)})
		return
	}
	v := dryRunView{Valid: true, Lookback: lookback.String(), Policies: make([]dryPolicyView, 0, len(ps))}
	procs, _ := e.processes()
	for _, p := range ps {
		dv := dryPolicyView{Name: p.Name, Target: p.Target, Selects: []control.Process{}, Fired: []history.Firing{}}
		for _, st := range procs {
			if p.Selector.Matches(policy.AttrMap(st.Attributes)) {
				dv.Selects = append(dv.Selects, st.Process)
			}
		}
		slices.SortFunc(dv.Selects, func(a, b control.Process) int { return a.PID - b.PID })
		v.Policies = append(v.Policies, dv)
	}
	hs := e.histories()
	if len(hs) == 0 {
		v.Note = "no process history is available (is the continuousprofiling processor running?): only the selection is shown"
	}
	for _, h := range hs {
		v.HistorySpan = h.HistorySpan().String()
		if lookback > h.HistorySpan() {
			v.Note = fmt.Sprintf("the processor keeps %s of history: the replay covers that much", h.HistorySpan())
		}
		for i, run := range h.DryRun(ps, lookback) {
			dv := &v.Policies[i]
			dv.Fired = append(dv.Fired, run.Fired...)
			dv.Evaluated += run.Evaluated
			dv.Notes = append(dv.Notes, run.Notes...)
		}
	}
	writeJSON(w, http.StatusOK, v)
}

// splitErrors lists the problems of a joined validation error, one per
// line, as the API's last_error shows them together.
func splitErrors(err error) []string {
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
