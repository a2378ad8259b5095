// Package control holds the types and interfaces between the three
// components, so that none imports another's package. The extension
// implements PolicyReader, PolicySubscriber, Scheduler and
// ProcessViewRegistry (and dispatch.Registry); the processor implements
// ProcessView; the receiver implements dispatch.Executor.
package control

import (
	"errors"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/contprof/contprof/internal/control/policy"
)

// The control plane, split by who needs what. The profilingpolicy
// extension implements all of them; each component asks only for the
// interfaces it uses (see Find) and names them in a local interface.

// PolicyReader returns the current consistent policy set; never nil.
type PolicyReader interface {
	Policies() *policy.Set
}

// PolicySubscriber calls fn with the current set now and with every later
// set. The returned func stops the calls.
type PolicySubscriber interface {
	Subscribe(fn func(*policy.Set)) (unsubscribe func())
}

// Scheduler admits task requests. RequestTask is cheap and never waits on
// a profiler: it applies silences and limits, records the task as pending
// and hands it to an executor, which starts it on its own goroutine. It
// returns the task id, or refuses with a *RefusedError.
type Scheduler interface {
	RequestTask(req TaskRequest) (taskID string, err error)
}

// ProcessViewRegistry lets the API list monitored processes.
type ProcessViewRegistry interface {
	RegisterProcessView(v ProcessView) (unregister func())
}

// Find returns the extension implementing T with the given id (or the only
// one when id is the zero value) among the host's extensions.
func Find[T any](host component.Host, id component.ID) (T, error) {
	var found, zero T
	var n int
	for eid, ext := range host.GetExtensions() {
		c, ok := ext.(T)
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
		return zero, errors.New("policy_extension: extension " + id.String() + " is not configured or is not a profilingpolicy extension")
	}
	switch n {
	case 0:
		return zero, errors.New("policy_extension: no profilingpolicy extension is configured in service.extensions")
	case 1:
		return found, nil
	default:
		return zero, errors.New("policy_extension: several profilingpolicy extensions are configured; name one")
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

// InstanceKey is the service instance (docs/design.md, "Window semantics"): service.instance.id,
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
