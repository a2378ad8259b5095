// Package taskevents turns a profiling task's lifecycle into OTLP log
// records (events), so that a fleet's task timeline lives in the log
// backend people already have: one record per transition, with the event
// name in the record's EventName and in the event.name attribute (for
// backends and processors that read only attributes).
package taskevents

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/output/profiles"
)

// Event names.
const (
	Started  = "contprof.task.started"
	Finished = "contprof.task.finished"
	Failed   = "contprof.task.failed"
	Refused  = "contprof.task.refused"
)

// Attribute keys besides the task attributes profiles carry
// (profiles.TaskAttributes: task id, policy, target, trigger).
const (
	AttrEventName  = "event.name"
	AttrPIDs       = "contprof.task.processes"
	AttrDuration   = "contprof.task.duration"
	AttrCauses     = "contprof.task.causes"
	AttrReason     = "contprof.task.reason"
	AttrErrMessage = "error.message"
)

// Event is one lifecycle transition.
type Event struct {
	Name string
	At   time.Time
	// Task is the task; for Refused only its Target and Process are known
	// (the refusal comes before a task exists).
	Task control.Task
	// Err is why the task failed or was refused.
	Err error
}

// Logs builds the OTLP logs of events under scopeName: one resource per
// host (host.name of the task's first process, else hostName: the
// collector's configured host name).
func Logs(scopeName, hostName string, events ...Event) plog.Logs {
	ld := plog.NewLogs()
	byHost := map[string]plog.LogRecordSlice{}
	for _, ev := range events {
		host := hostName
		if len(ev.Task.Process) > 0 && ev.Task.Process[0].Host != "" {
			host = ev.Task.Process[0].Host
		}
		recs, ok := byHost[host]
		if !ok {
			rl := ld.ResourceLogs().AppendEmpty()
			rl.Resource().Attributes().PutStr("host.name", host)
			sl := rl.ScopeLogs().AppendEmpty()
			sl.Scope().SetName(scopeName)
			recs = sl.LogRecords()
			byHost[host] = recs
		}
		fill(recs.AppendEmpty(), ev)
	}
	return ld
}

func fill(r plog.LogRecord, ev Event) {
	at := ev.At
	if at.IsZero() {
		at = time.Now()
	}
	r.SetTimestamp(pcommon.NewTimestampFromTime(at))
	r.SetObservedTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	r.SetEventName(ev.Name)
	r.SetSeverityNumber(plog.SeverityNumberInfo)
	if ev.Name == Failed || ev.Name == Refused {
		r.SetSeverityNumber(plog.SeverityNumberWarn)
	}
	r.SetSeverityText(r.SeverityNumber().String())

	t := ev.Task
	attrs := profiles.TaskAttributes(t)
	if t.ID == "" {
		delete(attrs, profiles.AttrTaskID)
	}
	attrs[AttrEventName] = ev.Name
	pids := make([]int64, len(t.Process))
	for i, p := range t.Process {
		pids[i] = int64(p.PID)
	}
	attrs[AttrPIDs] = pids
	if len(t.Process) == 1 {
		attrs["process.pid"] = pids[0]
		for _, k := range []string{"service.name", "process.executable.name", "container.id", "k8s.pod.uid"} {
			if v, ok := t.Process[0].Attributes[k]; ok {
				attrs[k] = v
			}
		}
	}
	if t.Duration > 0 {
		attrs[AttrDuration] = t.Duration.String()
	}
	if len(t.Causes) > 0 {
		causes := make([]string, len(t.Causes))
		for i, c := range t.Causes {
			causes[i] = causeString(c)
		}
		attrs[AttrCauses] = causes
	}
	if ev.Err != nil {
		key := AttrErrMessage
		if ev.Name == Refused {
			key = AttrReason
		}
		attrs[key] = ev.Err.Error()
	}
	profiles.PutAttributes(r.Attributes(), attrs)
	r.Body().SetStr(body(ev))
}

// causeString is one cause as a policy item reads: "process_cpu > 80 in
// 5 of 10 s (values 81.5, 90)".
func causeString(c control.Cause) string {
	vals := make([]string, len(c.Values))
	for i, v := range c.Values {
		vals[i] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	s := fmt.Sprintf("%s > %g in %d of %d s (values %s)", c.Monitor, c.Threshold, c.Count, c.Period, strings.Join(vals, ", "))
	if c.URIRegex != "" {
		s += " uri_regex " + c.URIRegex
	}
	return s
}

func body(ev Event) string {
	t := ev.Task
	var b strings.Builder
	b.WriteString("profiling task")
	if t.ID != "" {
		b.WriteString(" " + t.ID)
	}
	fmt.Fprintf(&b, " (%s", t.Target)
	if t.Policy != "" {
		b.WriteString(", policy " + t.Policy)
	}
	b.WriteString(")")
	switch ev.Name {
	case Started:
		b.WriteString(" started")
	case Finished:
		b.WriteString(" finished")
	case Failed:
		b.WriteString(" failed")
	case Refused:
		b.WriteString(" refused")
	}
	if len(t.Process) > 0 {
		pids := make([]string, len(t.Process))
		for i, p := range t.Process {
			pids[i] = strconv.Itoa(p.PID)
		}
		b.WriteString(" for pid " + strings.Join(pids, ", "))
	}
	if ev.Err != nil {
		b.WriteString(": " + ev.Err.Error())
	}
	return b.String()
}
