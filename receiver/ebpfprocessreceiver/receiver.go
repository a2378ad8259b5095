//go:build linux

package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/xconsumer"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/dispatch"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/periodic"
	"github.com/contprof/contprof/internal/profiler/privilege"
)

// controlPlane is what the receiver needs of the profilingpolicy
// extension: the policies (scope policy_targets, the HTTP monitor) and a
// place to offer itself as the executor of tasks.
type controlPlane interface {
	control.PolicyReader
	dispatch.Registry
}

// ebpfReceiver is the one instance behind all pipelines of a component ID.
type ebpfReceiver struct {
	cfg    *Config
	set    receiver.Settings
	logger *zap.Logger

	mu       sync.Mutex
	metrics  consumer.Metrics
	logs     consumer.Logs
	profiles xconsumer.Profiles

	ctrl controlPlane
	// events sends task lifecycle events to the logs pipeline (nil
	// without one).
	events *taskEvents
	// priv is what profiling may do here, probed once at Start.
	priv privilege.Status
	// http is the HTTP monitor, loaded while the scraper's policies or a
	// network task need it; exchanges carries its exchanges to network
	// tasks.
	http      *httpMonitor
	exchanges exchangeHub
	// lookback records the processes policies with a lookback select (nil
	// without a profiles pipeline or extension).
	lookback *lookbackSync
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stops    []func()
}

func newReceiver(set receiver.Settings, cfg *Config) (*ebpfReceiver, error) {
	return &ebpfReceiver{cfg: cfg, set: set, logger: set.Logger}, nil
}

func (r *ebpfReceiver) setMetrics(c consumer.Metrics)    { r.mu.Lock(); r.metrics = c; r.mu.Unlock() }
func (r *ebpfReceiver) setLogs(c consumer.Logs)          { r.mu.Lock(); r.logs = c; r.mu.Unlock() }
func (r *ebpfReceiver) setProfiles(c xconsumer.Profiles) { r.mu.Lock(); r.profiles = c; r.mu.Unlock() }

// Start finds the policy extension (optional: without it the receiver only
// emits metrics), starts the metrics loop and registers the task executor.
func (r *ebpfReceiver) Start(_ context.Context, host component.Host) error {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel

	ctrl, err := control.Find[controlPlane](host, r.cfg.PolicyExtension)
	if err != nil {
		if r.cfg.PolicyExtension != (component.ID{}) || r.cfg.Scope == ScopePolicyTargets {
			cancel()
			return err
		}
		r.logger.Info("No profilingpolicy extension: emitting metrics only, no profiling tasks", zap.String("reason", err.Error()))
	}
	r.ctrl = ctrl
	r.probePrivileges(host)

	r.http = &httpMonitor{cfg: r.cfg.HTTP, logger: r.logger, hub: &r.exchanges, reportErr: func(err error) {
		componentstatus.ReportStatus(host, componentstatus.NewRecoverableErrorEvent(err))
	}}
	// Unloaded last, once the scraper and the tasks are done with it.
	r.stops = append(r.stops, r.http.close)
	// Without the privileges of on-CPU profiling (said once at start) the
	// lookback record could only fail on every scrape.
	if ctrl != nil && r.profiles != nil && r.metrics != nil && r.priv.Admit(policy.TargetOnCPU) == nil {
		// Fed by the scraper; stopped after the executor, whose tasks
		// read it.
		lb, err := newLookbackSync(r.cfg.Profiling.Lookback, r.cfg.Profiling.OffCPU, r.priv.Admit(policy.TargetOffCPU) == nil, r.logger)
		if err != nil {
			cancel()
			return err
		}
		r.lookback = lb
		r.stops = append(r.stops, lb.close)
	}
	if r.metrics != nil {
		s, err := newScraper(r.cfg, r.set, ctrl, r.http)
		if err != nil {
			cancel()
			return err
		}
		s.lookback = r.lookback
		r.stops = append(r.stops, s.close)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.runMetrics(ctx, s)
		}()
	}
	if ctrl != nil && r.logs != nil {
		// Stopped after the executor (stops run last first), so the
		// events of the tasks that Shutdown ends are still sent.
		r.events = newTaskEvents(r.logs, r.logger, r.cfg.hostName())
		r.stops = append(r.stops, r.events.close)
	}
	if ctrl != nil && (r.profiles != nil || r.metrics != nil || r.logs != nil) {
		stop, err := startExecutor(ctx, r, host, ctrl)
		if err != nil {
			cancel()
			return err
		}
		r.stops = append(r.stops, stop)
	}
	return nil
}

func (r *ebpfReceiver) runMetrics(ctx context.Context, s *scraper) {
	periodic.Run(ctx, r.cfg.CollectionInterval, func(now time.Time) {
		md, err := s.scrape(ctx, now)
		if err != nil {
			r.logger.Warn("Scrape failed", zap.Error(err))
			return
		}
		if md.ResourceMetrics().Len() == 0 {
			return
		}
		if err := r.metrics.ConsumeMetrics(ctx, md); err != nil {
			r.logger.Debug("Metrics not consumed", zap.Error(err))
		}
	})
}

// Shutdown stops everything Start began and waits for it.
func (r *ebpfReceiver) Shutdown(context.Context) error {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	for i := len(r.stops) - 1; i >= 0; i-- {
		r.stops[i]()
	}
	r.stops = nil
	return nil
}
