//go:build linux

package oncpu_test

import (
	"bytes"
	"time"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/oncpu"
	"github.com/contprof/contprof/internal/profiler/symbolize"
)

// How the receiver runs an on_cpu task: one Manager and one Symbolizer per
// receiver, one Subscription per task.
func Example() {
	mgr, err := oncpu.NewManager(oncpu.Options{Frequency: 99}) // at receiver Start
	if err != nil {
		return
	}
	defer mgr.Close() // at Shutdown
	sym := symbolize.New(symbolize.Options{})

	var task control.Task // from StartTask
	proc := task.Process[0]
	sub, err := mgr.Acquire(proc.PID) // loads the sampler on first use
	if err != nil {
		return // the task failed to start
	}
	defer sub.Close()
	_ = sym.Preload(proc.PID) // symbols survive the process exiting
	defer sym.Forget(proc.PID)

	attrs := profiles.TaskAttributes(task)
	for range time.Tick(10 * time.Second) { // every report interval, and once at the end
		batch, err := sub.Drain()
		if err != nil {
			return
		}
		p := batch.Profile(sym, proc.Attributes, attrs)
		otlp := profiles.ToPprofile("github.com/contprof/contprof/receiver/ebpfprocessreceiver", p)
		_ = otlp        // to the profiles consumer
		pp := p.Pprof() // to the TaskSink (extension download)
		var buf bytes.Buffer
		_ = pp.Write(&buf)
	}
}
