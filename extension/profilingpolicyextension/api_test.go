package profilingpolicyextension

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"go.opentelemetry.io/collector/component"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/dispatch"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/monitor/procfs"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

func do(t *testing.T, method, url, contentType, body string, header ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data, resp.Header
}

// wantError checks a JSON error response.
func wantError(t *testing.T, status int, data []byte, wantStatus int, wantMsg string) apiError {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want %d; body %s", status, wantStatus, data)
	}
	var ae apiError
	if err := json.Unmarshal(data, &ae); err != nil {
		t.Fatalf("error body is not JSON: %s", data)
	}
	if !strings.Contains(ae.Error, wantMsg) {
		t.Fatalf("error %q does not contain %q", ae.Error, wantMsg)
	}
	return ae
}

func TestAPIRequestErrors(t *testing.T) {
	e := startExtension(t, testConfig(), nil)
	u := e.baseURL()
	big := `{"target":"on_cpu","pid":1,"duration":"` + strings.Repeat("9", 2<<20) + `"}`
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		msg                             string
	}{
		{"bad json", "POST", "/api/v1/tasks", "application/json", `{"target":`, 400, "invalid JSON body"},
		{"not an object", "POST", "/api/v1/tasks", "", `[1]`, 400, "invalid JSON body"},
		{"two values", "POST", "/api/v1/tasks", "", `{"target":"on_cpu","pid":1} {}`, 400, "more than one value"},
		{"empty body", "POST", "/api/v1/tasks", "", ``, 400, "request body is empty"},
		{"unknown field", "POST", "/api/v1/tasks", "", `{"target":"on_cpu","pid":1,"frequency":99}`, 400, `unknown field "frequency"`},
		{"oversized body", "POST", "/api/v1/tasks", "", big, 413, "larger than 1048576 bytes"},
		{"wrong content type", "POST", "/api/v1/tasks", "text/plain", `{}`, 415, `Content-Type "text/plain" is not supported`},
		{"missing target", "POST", "/api/v1/tasks", "", `{"pid":1}`, 400, "target: is required"},
		{"bad target", "POST", "/api/v1/tasks", "", `{"target":"gpu","pid":1}`, 400, `target: "gpu" is not one of`},
		{"pid and selector", "POST", "/api/v1/tasks", "", `{"target":"on_cpu","pid":1,"selector":{"a":"b"}}`, 400, "mutually exclusive"},
		{"neither", "POST", "/api/v1/tasks", "", `{"target":"on_cpu"}`, 400, "one of pid or selector is required"},
		{"negative pid", "POST", "/api/v1/tasks", "", `{"target":"on_cpu","pid":-4}`, 400, "pid: -4 is not a process id"},
		{"bad regex", "POST", "/api/v1/tasks", "", `{"target":"on_cpu","selector":{"service.name":{"regex":"("}}}`, 400, `selector[service.name].regex: "(" is not a valid RE2 regex`},
		{"bad duration", "POST", "/api/v1/tasks", "", `{"target":"on_cpu","pid":1,"duration":"ever"}`, 400, `duration: "ever" is not a duration`},
		{"long duration", "POST", "/api/v1/tasks", "", `{"target":"on_cpu","pid":1,"duration":"3h"}`, 400, "duration: 3h0m0s is out of range 1s..1h"},
		{"no such pid", "POST", "/api/v1/tasks", "", `{"target":"on_cpu","pid":999999999}`, 404, "no process with pid 999999999"},
		{"no view for selector", "POST", "/api/v1/tasks", "", `{"target":"on_cpu","selector":{"service.name":"x"}}`, 404, "no process view is registered"},
		{"unknown task", "GET", "/api/v1/tasks/deadbeef", "", "", 404, `no task with id "deadbeef"`},
		{"unknown task profile", "GET", "/api/v1/tasks/deadbeef/profile", "", "", 404, `no task with id "deadbeef"`},
		{"cancel unknown", "POST", "/api/v1/tasks/deadbeef/cancel", "", "", 404, `no task with id "deadbeef"`},
		{"unknown path", "GET", "/api/v2/tasks", "", "", 404, "no such endpoint: /api/v2/tasks"},
		{"wrong method", "DELETE", "/api/v1/policies", "", "", 405, "method DELETE is not allowed on /api/v1/policies (allowed: GET)"},
		{"get cancel", "GET", "/api/v1/tasks/x/cancel", "", "", 405, "allowed: POST"},
		{"delete task", "DELETE", "/api/v1/tasks/x", "", "", 405, "method DELETE is not allowed on /api/v1/tasks/x (allowed: GET)"},
		{"put tasks", "PUT", "/api/v1/tasks", "", "", 405, "(allowed: GET, POST)"},
		{"post profile", "POST", "/api/v1/tasks/x/profile", "", "", 405, "(allowed: GET)"},
		{"below a task", "GET", "/api/v1/tasks/x/y", "", "", 404, "no such endpoint: /api/v1/tasks/x/y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, data, hdr := do(t, tt.method, u+tt.path, tt.ctype, tt.body)
			wantError(t, status, data, tt.status, tt.msg)
			if hdr.Get("Content-Type") != "application/json" {
				t.Fatalf("content type %q", hdr.Get("Content-Type"))
			}
		})
	}
}

func TestAPITasks(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxConcurrentTasks = 2
	e := startExtension(t, cfg, nil)
	u := e.baseURL()

	// Without an executor the request is refused with the reason.
	pid := os.Getpid()
	status, data, _ := do(t, "POST", u+"/api/v1/tasks", "application/json", `{"target":"on_cpu","pid":`+strconv.Itoa(pid)+`}`)
	ae := wantError(t, status, data, 409, "no task was started: no executor registered for target on_cpu")
	if len(ae.Refused) != 1 || ae.Refused[0].Process.PID != pid {
		t.Fatalf("refused %+v", ae.Refused)
	}

	x := newExecutor()
	defer e.RegisterExecutor(x)()

	// By pid: the process is read from /proc.
	status, data, _ = do(t, "POST", u+"/api/v1/tasks", "application/json", `{"target":"on_cpu","pid":`+strconv.Itoa(pid)+`,"duration":"30s"}`)
	if status != http.StatusCreated {
		t.Fatalf("status %d: %s", status, data)
	}
	var created postTaskResponse
	if err := json.Unmarshal(data, &created); err != nil {
		t.Fatal(err)
	}
	if len(created.Tasks) != 1 {
		t.Fatalf("created %+v", created)
	}
	tv := created.Tasks[0]
	p := tv.Processes[0]
	exe, _ := os.Executable()
	if tv.State != "running" || !tv.Manual || tv.Duration != "30s" || p.PID != pid || p.Attributes["process.executable.path"] != exe {
		t.Fatalf("task %+v", tv)
	}
	// The start time matches the kernel's, to the tick.
	if d := time.Since(p.StartTime); d < 0 || d > 10*time.Minute {
		t.Fatalf("start time %v is not this test process's", p.StartTime)
	}
	x.mu.Lock()
	if len(x.started) != 1 || x.started[0].Duration != 30*time.Second {
		t.Fatalf("executor got %+v", x.started)
	}
	x.mu.Unlock()

	// Same target and process again: refused, already running.
	status, data, _ = do(t, "POST", u+"/api/v1/tasks", "", `{"target":"on_cpu","pid":`+strconv.Itoa(pid)+`}`)
	wantError(t, status, data, 409, "is already running for process")

	// By selector, against the processor's view: one task per process for
	// on_cpu, limited by max_concurrent_tasks.
	view := staticView{
		{Process: control.Process{Host: "h", PID: 101, StartTime: time.Unix(100, 0), Attributes: map[string]any{"service.name": "checkout", "service.instance.id": "i1"}},
			Latest: map[policy.Monitor]float64{policy.MonitorProcessCPU: 93.5}, Policies: []string{"checkout-cpu"}, LastSeen: time.Now()},
		{Process: control.Process{Host: "h", PID: 102, StartTime: time.Unix(100, 0), Attributes: map[string]any{"service.name": "checkout", "service.instance.id": "i1"}}},
		{Process: control.Process{Host: "h", PID: 103, StartTime: time.Unix(100, 0), Attributes: map[string]any{"service.name": "cart"}}},
	}
	defer e.RegisterProcessView(view)()
	status, data, _ = do(t, "POST", u+"/api/v1/tasks", "", `{"target":"off_cpu","selector":{"service.name":{"regex":"^check"}},"duration":"10s"}`)
	if status != http.StatusCreated {
		t.Fatalf("status %d: %s", status, data)
	}
	created = postTaskResponse{}
	_ = json.Unmarshal(data, &created)
	if len(created.Tasks) != 1 || len(created.Refused) != 1 || !strings.Contains(created.Refused[0].Reason, "concurrency limit reached") {
		t.Fatalf("selector result %s", data)
	}
	offID := created.Tasks[0].ID

	// Cancel frees a slot; a network task covers the service instance.
	status, data, _ = do(t, "POST", u+"/api/v1/tasks/"+offID+"/cancel", "", "")
	if status != 200 || !strings.Contains(string(data), `"state": "cancelled"`) {
		t.Fatalf("cancel: %d %s", status, data)
	}
	status, data, _ = do(t, "POST", u+"/api/v1/tasks/"+offID+"/cancel", "", "")
	wantError(t, status, data, 409, "already ended (cancelled)")
	status, data, _ = do(t, "POST", u+"/api/v1/tasks", "", `{"target":"network","selector":{"service.name":"checkout"}}`)
	if status != http.StatusCreated {
		t.Fatalf("status %d: %s", status, data)
	}
	created = postTaskResponse{}
	_ = json.Unmarshal(data, &created)
	if len(created.Tasks) != 1 || len(created.Tasks[0].Processes) != 2 || created.Tasks[0].Duration != "1m0s" {
		t.Fatalf("network task %s", data)
	}
	netID := created.Tasks[0].ID

	// Profiles handed over by the executor are served merged, gzip pprof.
	status, data, _ = do(t, "GET", u+"/api/v1/tasks/"+netID+"/profile", "", "")
	wantError(t, status, data, 404, "has no profile yet (state running)")
	x.sink(netID).AddProfile(testProfile(2))
	x.sink(netID).AddProfile(testProfile(3))
	x.sink(netID).Done(nil)
	status, data, hdr := do(t, "GET", u+"/api/v1/tasks/"+netID+"/profile", "", "")
	if status != 200 || hdr.Get("Content-Type") != "application/octet-stream" || !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		t.Fatalf("profile: %d %q %x", status, hdr.Get("Content-Type"), data[:min(4, len(data))])
	}
	prof, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(prof.Sample) != 1 || prof.Sample[0].Value[0] != 5 {
		t.Fatalf("merged profile samples %v", prof.Sample)
	}

	// One task, and the list newest first.
	var one taskView
	getJSON(t, u+"/api/v1/tasks/"+netID, 200, &one)
	if one.State != "finished" || one.Profile == nil || one.Profile.Profiles != 2 || one.Profile.URL != "/api/v1/tasks/"+netID+"/profile" || one.Ended.IsZero() {
		t.Fatalf("task %+v", one)
	}
	var list struct{ Tasks []taskView }
	getJSON(t, u+"/api/v1/tasks", 200, &list)
	if len(list.Tasks) != 3 || list.Tasks[0].ID != netID || list.Tasks[1].ID != offID {
		t.Fatalf("tasks %+v", list.Tasks)
	}

	// Processes: the view's processes with their task counts.
	var procs struct {
		Processes []struct {
			PID         int                        `json:"pid"`
			Attributes  map[string]any             `json:"attributes"`
			Latest      map[policy.Monitor]float64 `json:"latest"`
			Policies    []string                   `json:"policies"`
			Tasks       int                        `json:"tasks_48h"`
			LastTrigger time.Time                  `json:"last_trigger"`
		}
	}
	getJSON(t, u+"/api/v1/processes", 200, &procs)
	if len(procs.Processes) != 3 || procs.Processes[0].PID != 101 || procs.Processes[0].Tasks != 2 || procs.Processes[0].Latest["process_cpu"] != 93.5 ||
		procs.Processes[0].Policies[0] != "checkout-cpu" || procs.Processes[2].Tasks != 0 || procs.Processes[0].LastTrigger.IsZero() {
		t.Fatalf("processes %+v", procs.Processes)
	}
	// Manual tasks are summarised per process in /api/v1/policies.
	var pv policiesView
	getJSON(t, u+"/api/v1/policies", 200, &pv)
	if len(pv.Manual) != 3 || pv.Manual[0].Tasks != 2 || pv.Manual[0].Process.PID != 101 {
		t.Fatalf("manual summary %+v", pv.Manual)
	}
}

func TestAPIPolicySummary(t *testing.T) {
	cfg := testConfig()
	cfg.Policies = []any{map[string]any{
		"name": "checkout-cpu", "target": "on_cpu", "selector": map[string]any{"service.name": "checkout"},
		"items": []any{map[string]any{"monitor": "process_cpu", "threshold": 80, "period": 10, "count": 5}},
	}}
	e := startExtension(t, cfg, nil)
	x := newExecutor()
	defer e.RegisterExecutor(x)()
	// The processor's requests: process 2 triggers twice, process 1 once.
	for _, pid := range []int{1, 2, 2} {
		id, err := e.RequestTask(control.TaskRequest{
			Policy: "checkout-cpu", Target: policy.TargetOnCPU, Duration: time.Minute,
			Processes: []control.Process{{Host: "h", PID: pid, StartTime: time.Unix(1, 0)}},
			Causes:    []control.Cause{{Policy: "checkout-cpu", Monitor: policy.MonitorProcessCPU, Threshold: 80, Period: 10, Count: 5, Values: []float64{81, 99}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		x.sink(id).Done(nil)
	}
	var pv policiesView
	getJSON(t, e.baseURL()+"/api/v1/policies", 200, &pv)
	if len(pv.Policies) != 1 {
		t.Fatalf("%+v", pv)
	}
	p := pv.Policies[0]
	if p.Source != "policies" || p.Duration != "10m0s" || p.Silence != "20m0s" || p.Selector["service.name"].Exact != "checkout" {
		t.Fatalf("policy view %+v", p)
	}
	if len(p.Processes) != 2 || p.Processes[0].Process.PID != 2 || p.Processes[0].Tasks != 2 || p.Processes[1].Tasks != 1 {
		t.Fatalf("summary %+v", p.Processes)
	}
	if pv.Version == "" || pv.LoadedAt.IsZero() || pv.Sources[0].Kind != "policies" || pv.LastError != "" {
		t.Fatalf("view %+v", pv)
	}
	var list struct{ Tasks []taskView }
	getJSON(t, e.baseURL()+"/api/v1/tasks", 200, &list)
	if c := list.Tasks[0].Causes; len(c) != 1 || c[0].Values[1] != 99 || list.Tasks[0].Silence != "" {
		t.Fatalf("causes %+v", list.Tasks[0])
	}
}

func TestAPIAuth(t *testing.T) {
	cfg := testConfig()
	cfg.API.Get().Auth = authConfig("tokenauth")
	host := &statusHost{exts: map[component.ID]component.Component{component.MustNewID("tokenauth"): &tokenAuth{token: "s3cret"}}}
	e := startExtension(t, cfg, host)
	defer e.RegisterExecutor(newExecutor())()
	u := e.baseURL()
	body := `{"target":"on_cpu","pid":` + strconv.Itoa(os.Getpid()) + `}`
	if status, _, _ := do(t, "POST", u+"/api/v1/tasks", "", body); status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated POST: %d", status)
	}
	if status, _, _ := do(t, "POST", u+"/api/v1/tasks/x/cancel", "", ""); status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated cancel: %d", status)
	}
	if status, _, _ := do(t, "GET", u+"/api/v1/tasks", "", ""); status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated GET: %d", status)
	}
	if status, data, _ := do(t, "POST", u+"/api/v1/tasks", "", body, "Authorization", "Bearer s3cret"); status != http.StatusCreated {
		t.Fatalf("authenticated POST: %d %s", status, data)
	}
}

func TestAPIDefaultBodyLimitFromConfig(t *testing.T) {
	// confighttp's own limit (api.max_request_body_size) applies to every
	// endpoint; the handlers never read more than 1 MiB either way.
	cfg := testConfig()
	cfg.API.Get().MaxRequestBodySize = 100
	e := startExtension(t, cfg, nil)
	status, data, _ := do(t, "POST", e.baseURL()+"/api/v1/tasks", "", `{"target":"on_cpu","pid":1,"duration":"`+strings.Repeat("1", 200)+`s"}`)
	wantError(t, status, data, 413, "larger than 100 bytes")
}

// TestAPIRefusesKernelThreadsAndZombies: a manual task on a kernel thread
// or a zombie would "finish" without a profile; it is refused with a 422
// naming why, and no task is created.
func TestAPIRefusesKernelThreadsAndZombies(t *testing.T) {
	e := startExtension(t, testConfig(), nil)
	u := e.baseURL()
	if b, err := os.ReadFile("/proc/2/stat"); err == nil && strings.Contains(string(b), "(kthreadd)") {
		status, data, _ := do(t, "POST", u+"/api/v1/tasks", "application/json", `{"target":"on_cpu","pid":2}`)
		wantError(t, status, data, http.StatusUnprocessableEntity, "pid: process 2 (kthreadd) is a kernel thread")
	} else {
		t.Log("no kthreadd at pid 2 (not the initial pid namespace); checking zombies only")
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	pid := strconv.Itoa(cmd.Process.Pid)
	var status int
	var data []byte
	for range 100 { // until the child has exited (it is not reaped before Wait)
		status, data, _ = do(t, "POST", u+"/api/v1/tasks", "application/json", `{"target":"off_cpu","pid":`+pid+`,"duration":"1s"}`)
		if status == http.StatusUnprocessableEntity {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantError(t, status, data, http.StatusUnprocessableEntity, "pid: process "+pid+" (true) is a zombie")
}

// A manual task for a pid names the process exactly as a policy task of
// the processor does (attributes from procfs, identity from host.name,
// process.pid and process.creation.time), so the two exclude each other.
func TestManualTaskIdentityMatchesPolicyTasks(t *testing.T) {
	e := startExtension(t, testConfig(), nil)
	x := newExecutor()
	defer e.RegisterExecutor(x)()
	pid := workload.StartSleeper(t).Process.Pid
	in, err := procfs.Lookup(procfs.Config{}, pid)
	if err != nil {
		t.Fatal(err)
	}
	// What the processor sends for this process: the receiver's resource
	// attributes, and the identity parsed back from them.
	attrs := in.Resource()
	start, err := time.Parse(time.RFC3339Nano, attrs["process.creation.time"].(string))
	if err != nil {
		t.Fatal(err)
	}
	fromPolicy := control.Process{Host: attrs["host.name"].(string), PID: int(attrs["process.pid"].(int64)), StartTime: start.UTC(), Attributes: attrs}

	manual, err := e.processByPID(pid)
	if err != nil {
		t.Fatal(err)
	}
	if manual.Key() != fromPolicy.Key() || !reflect.DeepEqual(manual.Attributes, fromPolicy.Attributes) {
		t.Fatalf("manual process %+v\npolicy process %+v", manual, fromPolicy)
	}

	if _, err := e.RequestTask(control.TaskRequest{Policy: "p", Target: policy.TargetOnCPU, Duration: time.Minute,
		Silence: time.Hour, Processes: []control.Process{fromPolicy}}); err != nil {
		t.Fatal(err)
	}
	status, data, _ := do(t, "POST", e.baseURL()+"/api/v1/tasks", "application/json", `{"target":"on_cpu","pid":`+strconv.Itoa(pid)+`}`)
	wantError(t, status, data, 409, "is already running for process "+fromPolicy.Key())
}

// A start that fails on the executor's goroutine answers the manual
// request like a refusal, with the executor's reason.
func TestManualTaskFailedStart(t *testing.T) {
	e := startExtension(t, testConfig(), nil)
	defer e.RegisterExecutor(failingExecutor{})()
	status, data, _ := do(t, "POST", e.baseURL()+"/api/v1/tasks", "application/json", `{"target":"off_cpu","pid":`+strconv.Itoa(os.Getpid())+`}`)
	ae := wantError(t, status, data, 409, "did not start: perf_event_open: permission denied")
	if len(ae.Refused) != 1 || ae.Refused[0].Process.PID != os.Getpid() {
		t.Fatalf("refused %+v", ae.Refused)
	}
}

// failingExecutor fails every start from its own goroutine, as the
// receiver does.
type failingExecutor struct{}

func (failingExecutor) Targets() []policy.Target { return policy.Targets }
func (failingExecutor) StartTask(_ context.Context, _ control.Task, s dispatch.Sink) error {
	go s.Done(errors.New("perf_event_open: permission denied"))
	return nil
}

// TestAPIConnectionsBounded: past limits.max_api_connections a new
// connection waits to be accepted instead of costing the collector memory;
// it is served as soon as one closes.
func TestAPIConnectionsBounded(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxAPIConnections = 2
	e := startExtension(t, cfg, nil)
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", e.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	client := &http.Client{Timeout: 500 * time.Millisecond}
	if resp, err := client.Get(e.baseURL() + "/api/v1/status"); err == nil {
		resp.Body.Close()
		t.Fatalf("a third connection was served (%s) while 2 of 2 were open", resp.Status)
	}
	held[0].Close()
	held = held[1:]
	client.Timeout = 5 * time.Second
	resp, err := client.Get(e.baseURL() + "/api/v1/status")
	if err != nil {
		t.Fatalf("not served after a connection closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
}
