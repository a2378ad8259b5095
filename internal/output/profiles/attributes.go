package profiles

import (
	"time"

	"github.com/contprof/contprof/internal/control"
)

// Trigger context attribute keys stamped on every profile a task emits.
const (
	AttrTaskID           = "contprof.task.id"
	AttrPolicyName       = "contprof.policy.name"
	AttrTarget           = "contprof.target"
	AttrTriggerMonitor   = "contprof.trigger.monitor"
	AttrTriggerThreshold = "contprof.trigger.threshold"
	AttrTriggerValues    = "contprof.trigger.values"
	AttrTriggerPeriod    = "contprof.trigger.period"
	AttrTriggerCount     = "contprof.trigger.count"
	AttrTriggerTime      = "contprof.trigger.time"
	AttrTriggerURIRegex  = "contprof.trigger.uri_regex"
	AttrTriggerURIList   = "contprof.trigger.uri_list"
	// AttrTriggerMonitors lists every monitor that fired when a task has
	// several causes; the scalar trigger attributes describe the first.
	AttrTriggerMonitors = "contprof.trigger.monitors"
)

// TaskAttributes returns the trigger context of t as profile attributes.
// A manual task (no causes) carries only the task, policy and target.
func TaskAttributes(t control.Task) map[string]any {
	attrs := map[string]any{
		AttrTaskID: t.ID,
		AttrTarget: string(t.Target),
	}
	if t.Policy != "" {
		attrs[AttrPolicyName] = t.Policy
	}
	if len(t.Causes) == 0 {
		return attrs
	}
	c := t.Causes[0]
	attrs[AttrTriggerMonitor] = string(c.Monitor)
	attrs[AttrTriggerThreshold] = c.Threshold
	attrs[AttrTriggerValues] = append([]float64(nil), c.Values...)
	attrs[AttrTriggerPeriod] = int64(c.Period)
	attrs[AttrTriggerCount] = int64(c.Count)
	if !c.At.IsZero() {
		attrs[AttrTriggerTime] = c.At.UTC().Format(time.RFC3339Nano)
	}
	if c.URIRegex != "" {
		attrs[AttrTriggerURIRegex] = c.URIRegex
	}
	if len(c.URIList) > 0 {
		attrs[AttrTriggerURIList] = append([]string(nil), c.URIList...)
	}
	if len(t.Causes) > 1 {
		monitors := make([]string, len(t.Causes))
		for i, c := range t.Causes {
			monitors[i] = string(c.Monitor)
		}
		attrs[AttrTriggerMonitors] = monitors
	}
	return attrs
}
