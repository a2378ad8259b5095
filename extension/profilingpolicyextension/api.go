package profilingpolicyextension // import "github.com/contprof/contprof/extension/profilingpolicyextension"

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/contprof/contprof/extension/profilingpolicyextension/internal/ui"
	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/control/policysource"
	"github.com/contprof/contprof/internal/control/taskcontrol"
	"github.com/contprof/contprof/internal/monitor/procfs"
)

// defaultManualDuration is the duration of a task started through the API
// without one.
const defaultManualDuration = time.Minute

// manualStartWait bounds how long POST /api/v1/tasks waits for its tasks
// to start, so that it answers with running tasks or why they failed.
const manualStartWait = 10 * time.Second

// route is one endpoint of the API.
type route struct {
	method, path string
	handle       http.HandlerFunc
}

func (e *profilingPolicy) routes() []route {
	return []route{
		{http.MethodGet, "/api/v1/policies", e.getPolicies},
		{http.MethodGet, "/api/v1/processes", e.getProcesses},
		{http.MethodGet, "/api/v1/tasks", e.getTasks},
		{http.MethodPost, "/api/v1/tasks", e.postTask},
		{http.MethodGet, "/api/v1/tasks/{id}", e.getTask},
		{http.MethodGet, "/api/v1/tasks/{id}/profile", e.getProfile},
		{http.MethodPost, "/api/v1/tasks/{id}/cancel", e.cancelTask},
		{http.MethodGet, "/api/v1/status", e.getStatus},
	}
}

// handler routes with ServeMux method patterns ("GET /api/v1/tasks/{id}",
// which also serves HEAD). The mux's own 404 and 405 answers are plain
// text; a pattern without a method on each path (less specific, so it
// only gets the other methods) and "/" answer them as JSON instead.
func (e *profilingPolicy) handler() http.Handler {
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	var paths []string
	for _, r := range append(e.routes(), e.uiRoutes()...) {
		mux.HandleFunc(r.method+" "+r.path, r.handle)
		if allowed[r.path] == nil {
			paths = append(paths, r.path)
		}
		allowed[r.path] = append(allowed[r.path], r.method)
	}
	for _, p := range paths {
		mux.HandleFunc(p, methodNotAllowed(allowed[p]))
	}
	ui.Register(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path+" (see /api/v1/policies, /api/v1/processes, /api/v1/tasks)")
	})
	return mux
}

// methodNotAllowed answers a method no route of the path takes with a
// JSON 405.
func methodNotAllowed(methods []string) http.HandlerFunc {
	methods = slices.Sorted(slices.Values(methods))
	allow := strings.Join(methods, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow))
	}
}

type apiError struct {
	Error string `json:"error"`
	// Until is set when a task request was refused by a silence.
	Until *time.Time `json:"until,omitempty"`
	// Refused lists per-process refusals of a manual task request.
	Refused []refusalView `json:"refused,omitempty"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		_ = json.NewEncoder(&buf).Encode(apiError{Error: "encoding the response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// ---- policies ----

type policiesView struct {
	Version   string                      `json:"version"`
	LoadedAt  time.Time                   `json:"loaded_at"`
	LastError string                      `json:"last_error,omitempty"`
	Sources   []policysource.SourceStatus `json:"sources"`
	Policies  []policyView                `json:"policies"`
	// Manual summarises tasks started through the API.
	Manual []processSummaryView `json:"manual_processes,omitempty"`
}

type policyView struct {
	Name     string          `json:"name"`
	Source   string          `json:"source"`
	Selector policy.Selector `json:"selector,omitempty"`
	Target   policy.Target   `json:"target"`
	Duration string          `json:"duration"`
	Silence  string          `json:"silence"`
	Items    []policy.Item   `json:"items"`
	// Processes that had tasks of this policy in the last 48 hours, most
	// tasks first.
	Processes []processSummaryView `json:"processes"`
}

type processSummaryView struct {
	Process     control.Process `json:"process"`
	Tasks       int             `json:"tasks_48h"`
	LastTrigger time.Time       `json:"last_trigger"`
}

func summaryViews(list []taskcontrol.ProcessSummary) []processSummaryView {
	out := make([]processSummaryView, 0, len(list))
	for _, s := range list {
		out = append(out, processSummaryView{Process: s.Process, Tasks: s.Tasks, LastTrigger: s.LastTrigger})
	}
	return out
}

func (e *profilingPolicy) getPolicies(w http.ResponseWriter, _ *http.Request) {
	set := e.Policies()
	summary := e.tasks.Summary()
	v := policiesView{
		Version: set.Version, LoadedAt: set.LoadedAt,
		Sources:  e.merger.Sources(),
		Policies: make([]policyView, 0, set.Len()),
		Manual:   summaryViews(summary[""]),
	}
	if err := e.merger.Err(); err != nil {
		v.LastError = err.Error()
	}
	for _, p := range set.Policies {
		v.Policies = append(v.Policies, policyView{
			Name: p.Name, Source: e.merger.SourceOf(p.Name), Selector: p.Selector, Target: p.Target,
			Duration: p.Duration.String(), Silence: p.Silence.String(), Items: p.Items,
			Processes: summaryViews(summary[p.Name]),
		})
	}
	writeJSON(w, http.StatusOK, v)
}

// ---- processes ----

type processView struct {
	control.ProcessStatus
	Tasks       int       `json:"tasks_48h"`
	LastTrigger time.Time `json:"last_trigger,omitzero"`
	// Lookback is the process's on-CPU lookback record, when an on_cpu
	// policy with a lookback selects it; LookbackOffCPU the off-CPU one
	// (off_cpu policies opt in).
	Lookback       *control.LookbackCoverage `json:"lookback,omitempty"`
	LookbackOffCPU *control.LookbackCoverage `json:"lookback_off_cpu,omitempty"`
}

func (e *profilingPolicy) getProcesses(w http.ResponseWriter, _ *http.Request) {
	procs, _ := e.processes()
	coverage := e.lookbackCoverage()
	out := make([]processView, 0, len(procs))
	for _, p := range procs {
		n, last := e.tasks.ProcessStats(p.Key())
		v := processView{ProcessStatus: p, Tasks: n, LastTrigger: last}
		if c, ok := coverage[coverageKey{p.PID, string(policy.TargetOnCPU)}]; ok {
			v.Lookback = &c
		}
		if c, ok := coverage[coverageKey{p.PID, string(policy.TargetOffCPU)}]; ok {
			v.LookbackOffCPU = &c
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Tasks != out[j].Tasks {
			return out[i].Tasks > out[j].Tasks
		}
		return out[i].PID < out[j].PID
	})
	writeJSON(w, http.StatusOK, map[string]any{"processes": out})
}

// ---- tasks ----

type taskView struct {
	ID        string            `json:"id"`
	Policy    string            `json:"policy,omitempty"`
	Manual    bool              `json:"manual,omitempty"`
	Target    policy.Target     `json:"target"`
	State     taskcontrol.State `json:"state"`
	Duration  string            `json:"duration"`
	Silence   string            `json:"silence,omitempty"`
	Created   time.Time         `json:"created"`
	Started   time.Time         `json:"started,omitzero"`
	Ended     time.Time         `json:"ended,omitzero"`
	Error     string            `json:"error,omitempty"`
	Processes []control.Process `json:"processes"`
	Causes    []control.Cause   `json:"causes,omitempty"`
	Profile   *profileInfoView  `json:"profile,omitempty"`
}

type profileInfoView struct {
	URL      string `json:"url,omitempty"`
	Bytes    int    `json:"bytes"`
	Profiles int    `json:"profiles"`
	Dropped  bool   `json:"dropped,omitempty"`
	Error    string `json:"error,omitempty"`
}

func newTaskView(t taskcontrol.TaskInfo) taskView {
	v := taskView{
		ID: t.ID, Policy: t.Policy, Manual: t.Manual, Target: t.Target, State: t.State,
		Duration: t.Duration.String(), Created: t.Created, Started: t.Started, Ended: t.Ended,
		Error: t.Error, Processes: t.Processes, Causes: t.Causes,
	}
	if t.Silence > 0 {
		v.Silence = t.Silence.String()
	}
	if v.Processes == nil {
		v.Processes = []control.Process{}
	}
	if p := t.Profile; p.Profiles > 0 || p.Dropped || p.Error != "" {
		v.Profile = &profileInfoView{Bytes: p.Bytes, Profiles: p.Profiles, Dropped: p.Dropped, Error: p.Error}
		if p.Bytes > 0 {
			v.Profile.URL = "/api/v1/tasks/" + t.ID + "/profile"
		}
	}
	return v
}

func (e *profilingPolicy) getTasks(w http.ResponseWriter, _ *http.Request) {
	tasks := e.tasks.Tasks()
	out := make([]taskView, 0, len(tasks))
	for _, t := range tasks {
		out = append(out, newTaskView(t))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": out})
}

// task returns the task with id, or answers a JSON 404 and false.
func (e *profilingPolicy) task(w http.ResponseWriter, id string) (taskcontrol.TaskInfo, bool) {
	t, ok := e.tasks.Task(id)
	if !ok {
		writeNotFound(w, id)
	}
	return t, ok
}

func writeNotFound(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, fmt.Sprintf("no task with id %q (tasks are kept 48 hours)", id))
}

func (e *profilingPolicy) getTask(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t, ok := e.task(w, id)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, newTaskView(t))
}

func (e *profilingPolicy) getProfile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t, ok := e.task(w, id)
	if !ok {
		return
	}
	data, ok, err := e.tasks.Profile(id)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("task %q's profile: %v", id, err))
		return
	}
	if !ok {
		writeNoProfile(w, t)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="contprof-`+id+`.pb.gz"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

// writeNoProfile answers a 404 saying why task t has no stored profile.
func writeNoProfile(w http.ResponseWriter, t taskcontrol.TaskInfo) {
	msg := fmt.Sprintf("task %q has no profile yet (state %s)", t.ID, t.State)
	if t.Profile.Dropped {
		msg = fmt.Sprintf("task %q's profile was dropped to stay within limits.profile_store_bytes", t.ID)
	}
	writeError(w, http.StatusNotFound, msg)
}

func (e *profilingPolicy) cancelTask(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t, err := e.tasks.Cancel(id)
	switch {
	case errors.Is(err, taskcontrol.ErrNotFound):
		writeNotFound(w, id)
	case err != nil:
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeJSON(w, http.StatusOK, newTaskView(t))
	}
}

// taskRequestBody is the body of POST /api/v1/tasks.
type taskRequestBody struct {
	Target   policy.Target   `json:"target"`
	PID      int             `json:"pid"`
	Selector policy.Selector `json:"selector"`
	Duration string          `json:"duration"`
}

type refusalView struct {
	Process control.Process `json:"process"`
	Reason  string          `json:"reason"`
	Until   *time.Time      `json:"until,omitempty"`
}

type postTaskResponse struct {
	Tasks   []taskView    `json:"tasks"`
	Refused []refusalView `json:"refused,omitempty"`
}

func (e *profilingPolicy) postTask(w http.ResponseWriter, r *http.Request) {
	body, status, err := decodeTaskRequest(w, r)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	duration := defaultManualDuration
	if body.Duration != "" {
		if duration, err = time.ParseDuration(body.Duration); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("duration: %q is not a duration (use e.g. \"30s\")", body.Duration))
			return
		}
		if duration < policy.MinDuration || duration > policy.MaxDuration {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("duration: %s is out of range 1s..1h", duration))
			return
		}
	}

	var groups [][]control.Process
	if body.PID != 0 {
		p, err := e.processByPID(body.PID)
		if err != nil {
			status := http.StatusNotFound
			if procfs.IsNotProfilable(err) {
				status = http.StatusUnprocessableEntity
			}
			writeError(w, status, err.Error())
			return
		}
		groups = [][]control.Process{{p}}
	} else {
		procs, haveView := e.processes()
		var matched []control.Process
		for _, ps := range procs {
			if body.Selector.Matches(policy.AttrMap(ps.Attributes)) {
				matched = append(matched, ps.Process)
			}
		}
		if len(matched) == 0 {
			msg := "no monitored process matches the selector"
			if !haveView {
				msg += " (no process view is registered: is the continuousprofiling processor running?)"
			}
			writeError(w, http.StatusNotFound, msg)
			return
		}
		groups = group(body.Target, matched)
	}

	resp := postTaskResponse{Tasks: []taskView{}}
	var accepted []string
	for _, g := range groups {
		id, err := e.tasks.RequestTask(control.TaskRequest{
			Target: body.Target, Duration: duration, Processes: g, Manual: true,
		})
		if err != nil {
			resp.Refused = append(resp.Refused, refusal(g[0], err))
			continue
		}
		accepted = append(accepted, id)
	}
	// The tasks start on the executor's goroutines, side by side; answer
	// with how that went.
	ctx, cancel := context.WithTimeout(r.Context(), manualStartWait)
	defer cancel()
	for _, id := range accepted {
		t, err := e.tasks.WaitStarted(ctx, id)
		switch {
		case err != nil:
			continue // left the history meanwhile
		case t.State == taskcontrol.StateFailed && t.Started.IsZero():
			reason := fmt.Sprintf("task %s did not start: %s", id, strings.TrimPrefix(t.Error, "start: "))
			resp.Refused = append(resp.Refused, refusalView{Process: t.Processes[0], Reason: reason})
		default:
			resp.Tasks = append(resp.Tasks, newTaskView(t))
		}
	}
	if len(resp.Tasks) == 0 {
		writeJSON(w, http.StatusConflict, apiError{
			Error:   "no task was started: " + resp.Refused[0].Reason,
			Until:   resp.Refused[0].Until,
			Refused: resp.Refused,
		})
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

// refusal describes why a request for the processes led by p was refused.
func refusal(p control.Process, err error) refusalView {
	rv := refusalView{Process: p, Reason: err.Error()}
	var re *control.RefusedError
	if errors.As(err, &re) {
		rv.Reason = re.Reason
		if !re.Until.IsZero() {
			rv.Until = &re.Until
		}
	}
	return rv
}

// group makes one request per process for on_cpu/off_cpu and one per
// service instance for network.
func group(target policy.Target, procs []control.Process) [][]control.Process {
	if target != policy.TargetNetwork {
		out := make([][]control.Process, len(procs))
		for i, p := range procs {
			out[i] = []control.Process{p}
		}
		return out
	}
	var order []string
	byInst := map[string][]control.Process{}
	for _, p := range procs {
		k := p.InstanceKey()
		if _, ok := byInst[k]; !ok {
			order = append(order, k)
		}
		byInst[k] = append(byInst[k], p)
	}
	out := make([][]control.Process, 0, len(order))
	for _, k := range order {
		out = append(out, byInst[k])
	}
	return out
}

// tooLarge is the answer when reading a body failed at its size limit (the
// server's or maxBodyBytes, whichever is smaller); nil for other errors.
func tooLarge(err error) error {
	var e *http.MaxBytesError
	if errors.As(err, &e) {
		return fmt.Errorf("request body is larger than %d bytes", e.Limit)
	}
	return nil
}

func decodeTaskRequest(w http.ResponseWriter, r *http.Request) (taskRequestBody, int, error) {
	var body taskRequestBody
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return body, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Type %q is not supported; send application/json", ct)
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		if big := tooLarge(err); big != nil {
			return body, http.StatusRequestEntityTooLarge, big
		}
		switch {
		case errors.Is(err, io.EOF):
			return body, http.StatusBadRequest, errors.New(`request body is empty; send e.g. {"target":"on_cpu","pid":1234,"duration":"30s"}`)
		default:
			return body, http.StatusBadRequest, fmt.Errorf("invalid JSON body: %w", err)
		}
	}
	if dec.More() {
		return body, http.StatusBadRequest, errors.New("invalid JSON body: more than one value")
	}
	switch {
	case body.Target == "":
		return body, http.StatusBadRequest, errors.New("target: is required (one of on_cpu, off_cpu, network)")
	case !body.Target.Valid():
		return body, http.StatusBadRequest, fmt.Errorf("target: %q is not one of on_cpu, off_cpu, network", body.Target)
	case body.PID != 0 && body.Selector != nil:
		return body, http.StatusBadRequest, errors.New("pid and selector are mutually exclusive; give one")
	case body.PID == 0 && body.Selector == nil:
		return body, http.StatusBadRequest, errors.New("one of pid or selector is required")
	case body.PID < 0:
		return body, http.StatusBadRequest, fmt.Errorf("pid: %d is not a process id", body.PID)
	}
	if err := body.Selector.Compile(); err != nil {
		return body, http.StatusBadRequest, err
	}
	return body, 0, nil
}
