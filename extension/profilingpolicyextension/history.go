package profilingpolicyextension // import "github.com/contprof/contprof/extension/profilingpolicyextension"

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"
)

var _ extensioncapabilities.Dependent = (*profilingPolicy)(nil)

// Dependencies makes the Collector start the storage extension before this
// one and stop it after, so the history is written before it closes.
func (e *profilingPolicy) Dependencies() []component.ID {
	if e.cfg.Storage == nil {
		return nil
	}
	return []component.ID{*e.cfg.Storage}
}

// openHistory restores the task history from the storage extension and
// keeps it there. Storage that cannot be opened or read never stops the
// collector: the history starts empty (or with what could be read), the
// error is logged and reported as component status.
func (e *profilingPolicy) openHistory(ctx context.Context, host component.Host) {
	id := e.cfg.Storage
	if id == nil {
		e.logger.Info("Task history is kept in memory only (set storage to keep it across restarts)")
		return
	}
	client, err := storageClient(ctx, host, *id, e.set.ID)
	if err != nil {
		e.historyFailed(host, err)
		return
	}
	e.storage = client
	n, err := e.tasks.Persist(client)
	if err != nil {
		e.historyFailed(host, err)
	}
	e.logger.Info("Task history restored from storage", zap.String("storage", id.String()), zap.Int("tasks", n))
}

func (e *profilingPolicy) historyFailed(host component.Host, err error) {
	e.logger.Error("Task history storage problem; the collector runs on with the history it could read", zap.Error(err))
	componentstatus.ReportStatus(host, componentstatus.NewRecoverableErrorEvent(err))
}

func storageClient(ctx context.Context, host component.Host, id, self component.ID) (storage.Client, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("storage: extension %s is not configured in service.extensions", id)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return nil, fmt.Errorf("storage: extension %s is not a storage extension", id)
	}
	client, err := se.GetClient(ctx, component.KindExtension, self, "task_history")
	if err != nil {
		return nil, fmt.Errorf("storage: opening %s: %w; the task history starts empty and is kept in memory", id, err)
	}
	return client, nil
}

// closeHistory closes the storage client after the controller wrote its
// last changes (Shutdown of the task controller).
func (e *profilingPolicy) closeHistory(ctx context.Context) error {
	if e.storage == nil {
		return nil
	}
	return e.storage.Close(ctx)
}
