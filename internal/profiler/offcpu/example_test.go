//go:build linux

package offcpu_test

import (
	"context"
	"time"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/offcpu"
	"github.com/contprof/contprof/internal/profiler/symbolize"
)

// How the receiver runs an off_cpu task: one Manager (and the Symbolizer
// shared with on-CPU tasks) per receiver, one TaskRun per task; the same
// shape as internal/oncpu.
func Example() {
	mgr, err := offcpu.NewManager(offcpu.Options{MinBlock: time.Millisecond}) // at receiver Start
	if err != nil {
		return // a bad configuration, e.g. "off_cpu min_block: -1ns is out of range [0, 1m0s]"
	}
	defer mgr.Close() // at Shutdown
	sym := symbolize.New(symbolize.Options{})

	var task control.Task // from StartTask
	proc := task.Process[0]
	run, err := mgr.StartTask(sym, offcpu.Task{ // loads the profiler on first use
		PID:            proc.PID,
		Duration:       task.Duration,
		ReportInterval: 10 * time.Second,
		Resource:       proc.Attributes,
		Attributes:     profiles.TaskAttributes(task),
	})
	if err != nil {
		return // the task failed to start
	}
	// Blocks until the duration ends, the process exits or ctx is done;
	// unloads the profiler when no other off_cpu task runs.
	_ = run.Run(context.Background(), func(p *profiles.Profile) {
		_ = profiles.ToPprofile("github.com/contprof/contprof/receiver/ebpfprocessreceiver", p) // to the profiles consumer
		_ = p.Pprof()                                                                           // to the TaskSink (extension download)
	})
}
