//go:build linux

package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/dispatch"
	"github.com/contprof/contprof/internal/monitor/httpmon"
	"github.com/contprof/contprof/internal/output/flows"
	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/netprof"
	"github.com/contprof/contprof/internal/profiler/taskrun"
)

// startNetworkTask profiles the connections of every process of the task's
// service instance on this host; it emits metrics per flow and sampled
// HTTP exchange logs each report interval, stamped with the trigger.
func (e *executor) startNetworkTask(t control.Task, sink dispatch.Sink) (func(context.Context) error, error) {
	resources := make(map[int]map[string]any, len(t.Process))
	pids := make([]int, 0, len(t.Process))
	for _, p := range t.Process {
		resources[p.PID] = p.Attributes
		pids = append(pids, p.PID)
	}
	task, err := netprof.Start(netprof.Options{
		PIDs:       pids,
		Resource:   func(pid int) map[string]any { return resources[pid] },
		Attributes: profiles.TaskAttributes(t),
	})
	if err != nil {
		return nil, err
	}
	// The task ends at its duration, or cleanly once every covered process
	// has exited; each report (and a last one) emits an interval.
	loop, err := taskrun.NewGroup("network", t.Duration, e.r.cfg.Profiling.ReportInterval, func() bool { return len(task.PIDs()) > 0 })
	if err != nil {
		_ = task.Close()
		return nil, err
	}
	// The task's exchanges come from the HTTP monitor, loaded for the
	// task's processes while it runs whatever triggered it.
	unsubscribe := e.r.exchanges.subscribe(func(ex httpmon.Exchange) {
		role := netprof.RoleServer
		if ex.Client {
			role = netprof.RoleClient
		}
		task.ObserveHTTP(netprof.Exchange{
			PID: ex.PID, FD: ex.FD, Role: role, Method: ex.Method, Status: ex.Status,
			Start: ex.Start, Duration: ex.Duration, Path: ex.Path,
		})
	})
	release := e.r.http.acquire(pids)

	return func(ctx context.Context) error {
		defer func() { _ = task.Close() }()
		defer unsubscribe()
		defer release()
		return loop.Run(ctx, func(bool) error {
			e.emitNetwork(t, task, sink)
			return nil
		})
	}, nil
}

func (e *executor) emitNetwork(t control.Task, task *netprof.Task, sink dispatch.Sink) {
	md, ld := task.Collect(time.Now())
	// The extension keeps a bounded summary of the flows for its web UI.
	if fs, ok := sink.(dispatch.FlowSink); ok && md.DataPointCount() > 0 {
		fs.AddFlows(flows.FromMetrics(md))
	}
	// Not the task's context: the last interval of a cancelled task must
	// still be exported.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if e.r.metrics != nil && md.DataPointCount() > 0 {
		if err := e.r.metrics.ConsumeMetrics(ctx, md); err != nil {
			e.r.logger.Warn("Network task metrics not exported", zap.String("task", t.ID), zap.Error(err))
		}
	}
	if e.r.logs != nil && ld.LogRecordCount() > 0 {
		if err := e.r.logs.ConsumeLogs(ctx, ld); err != nil {
			e.r.logger.Warn("Network task logs not exported", zap.String("task", t.ID), zap.Error(err))
		}
	}
}
