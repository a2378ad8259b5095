// Package control holds the interfaces between the three components, so that
// none imports another's package. The extension implements Controller; the
// processor implements ProcessView; the receiver implements Executor.
package control

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/google/pprof/profile"
	"go.opentelemetry.io/collector/component"

	"github.com/contprof/contprof/internal/control/policy"
)

// Controller is the control plane offered by the profilingpolicy extension.
type Controller interface {
	// Policies returns the current consistent snapshot; never nil.
	Policies() *policy.Set
	// Subscribe calls fn with the current set now and with every later set.
	// The returned func stops the calls.
	Subscribe(fn func(*policy.Set)) (unsubscribe func())
	// RequestTask accepts a request and returns the task id, or refuses it
	// with a *RefusedError.
	RequestTask(req TaskRequest) (taskID string, err error)
	// RegisterExecutor makes an executor available for the targets it serves.
	RegisterExecutor(e Executor) (unregister func())
	// RegisterProcessView lets the API list monitored processes.
	RegisterProcessView(v ProcessView) (unregister func())
}

// FindController returns the extension with the given id (or the only
// Controller when id is the zero value) among the host's extensions.
func FindController(host component.Host, id component.ID) (Controller, error) {
	var found Controller
	var n int
	for eid, ext := range host.GetExtensions() {
		c, ok := ext.(Controller)
		if !ok {
			continue
		}
		if id == (component.ID{}) {
			found = c
			n++
			continue
		}
		if eid == id {
			return c, nil
		}
	}
	if id != (component.ID{}) {
		return nil, errors.New("policy_extension: extension " + id.String() + " is not configured or is not a profilingpolicy extension")
	}
	switch n {
	case 0:
		return nil, errors.New("policy_extension: no profilingpolicy extension is configured in service.extensions")
	case 1:
		return found, nil
	default:
		return nil, errors.New("policy_extension: several profilingpolicy extensions are configured; name one")
	}
}

// Process identifies one process: host + pid + start time, so that PID reuse
// never mixes two processes.
type Process struct {
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	StartTime time.Time `json:"start_time"`
	// Attributes are the process's resource attributes.
	Attributes map[string]any `json:"attributes"`
}

// Key is a stable identity string for the process.
func (p Process) Key() string {
	return p.Host + "/" + itoa(p.PID) + "/" + itoa(int(p.StartTime.UnixNano()))
}

// InstanceKey is the service instance of DESIGN.md: service.instance.id,
// else k8s.pod.uid, else container.id, else host + service.name.
func (p Process) InstanceKey() string {
	for _, k := range []string{"service.instance.id", "k8s.pod.uid", "container.id"} {
		if v, ok := p.Attributes[k].(string); ok && v != "" {
			return k + "=" + v
		}
	}
	svc, _ := p.Attributes["service.name"].(string)
	return "host=" + p.Host + ",service.name=" + svc
}

func itoa(v int) string { return strconv.Itoa(v) }

// Cause says why a policy item fired.
type Cause struct {
	Policy    string         `json:"policy"`
	ItemIndex int            `json:"item_index"`
	Monitor   policy.Monitor `json:"monitor"`
	Threshold float64        `json:"threshold"`
	Period    int            `json:"period"`
	Count     int            `json:"count"`
	// Values are the per-second values that crossed the threshold, oldest first.
	Values   []float64 `json:"values"`
	URIRegex string    `json:"uri_regex,omitempty"`
	URIList  []string  `json:"uri_list,omitempty"`
	// At is the end of the second that completed the trigger.
	At time.Time `json:"at"`
}

// TaskRequest asks the controller to profile a process (or, for network, its
// service instance).
type TaskRequest struct {
	Policy   string        `json:"policy,omitempty"`
	Target   policy.Target `json:"target"`
	Duration time.Duration `json:"duration"`
	// Silence is how long after the task start no new task of the same target
	// runs for the same process (network: service instance).
	Silence time.Duration `json:"silence"`
	// Processes covered; for on_cpu/off_cpu exactly one.
	Processes []Process `json:"processes"`
	Causes    []Cause   `json:"causes,omitempty"`
	// Manual is true for tasks started through the API.
	Manual bool `json:"manual,omitempty"`
}

// RefusedError is returned by RequestTask when a request is not accepted.
type RefusedError struct {
	Reason string
	// Until is set when the request is silenced.
	Until time.Time
}

func (e *RefusedError) Error() string { return "task refused: " + e.Reason }

// Task is what an executor runs.
type Task struct {
	ID       string
	Policy   string
	Target   policy.Target
	Duration time.Duration
	Process  []Process
	Causes   []Cause
	Created  time.Time
}

// Executor runs tasks (the receiver).
type Executor interface {
	// Targets lists the targets this executor can run.
	Targets() []policy.Target
	// StartTask starts t and returns quickly. An error means it did not start
	// (the silence is not held). Once started, the executor reports through
	// sink until it calls sink.Done exactly once. ctx is cancelled when the
	// task is cancelled or the collector shuts down.
	StartTask(ctx context.Context, t Task, sink TaskSink) error
}

// Admitter is optionally implemented by an Executor. Admit says, cheaply
// and without calling back into the controller, why a task cannot run (a
// missing privilege or kernel feature, a target that is a kernel thread
// or a zombie); the controller then refuses the request with that reason
// instead of creating a task that is bound to fail.
type Admitter interface {
	Admit(target policy.Target, processes []Process) error
}

// StatusReporter is optionally implemented by an Executor: what it can run
// on this machine, for GET /api/v1/status.
type StatusReporter interface {
	ExecutorStatus() ExecutorStatus
}

// ExecutorStatus is what an executor found at start.
type ExecutorStatus struct {
	// Component is the executor's component id.
	Component string `json:"component"`
	// Targets are the targets it serves (pipelines permitting).
	Targets []policy.Target `json:"targets"`
	// Disabled maps a target that cannot run here to why.
	Disabled map[policy.Target]string `json:"disabled_targets,omitempty"`
	// Have maps each privilege or kernel feature checked to its presence.
	Have map[string]bool `json:"have"`
	// Missing lists what is absent; Degraded what runs with less.
	Missing  []string `json:"missing,omitempty"`
	Degraded []string `json:"degraded,omitempty"`
	// UID is the collector's effective user id.
	UID int `json:"uid"`
}

// TaskSink receives what a running task produces.
type TaskSink interface {
	// AddProfile hands over a profile of the task (one report interval); the
	// controller merges them per task for download.
	AddProfile(p *profile.Profile)
	// Done ends the task; err nil means finished, else failed.
	Done(err error)
}

// ProcessView is implemented by the processor for GET /api/v1/processes.
type ProcessView interface {
	Processes() []ProcessStatus
}

// ProcessStatus is one monitored process as the processor sees it.
type ProcessStatus struct {
	Process
	// Policies whose selector matches the process.
	Policies []string `json:"policies"`
	// Latest value per monitor (only monitors with data).
	Latest map[policy.Monitor]float64 `json:"latest"`
	// LastSeen is the newest data point time.
	LastSeen time.Time `json:"last_seen"`
}
