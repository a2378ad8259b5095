package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/xconsumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/xreceiver"

	"github.com/contprof/contprof/internal/sharedcomponent"
	"github.com/contprof/contprof/receiver/ebpfprocessreceiver/internal/metadata"
)

// receivers holds one instance per component ID, shared by the metrics,
// profiles and logs pipelines that use it.
var receivers sharedcomponent.Map[component.ID, *ebpfReceiver]

// NewFactory creates the ebpfprocess receiver factory.
func NewFactory() receiver.Factory {
	return xreceiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		xreceiver.WithMetrics(createMetrics, metadata.MetricsStability),
		xreceiver.WithLogs(createLogs, metadata.LogsStability),
		xreceiver.WithProfiles(createProfiles, metadata.ProfilesStability),
	)
}

// create returns the receiver shared under set.ID with one more pipeline's
// consumer set by setNext.
func create[C any](set receiver.Settings, cfg component.Config, next C, setNext func(*ebpfReceiver, C)) (component.Component, error) {
	r, err := receivers.LoadOrStore(set.ID, func() (*ebpfReceiver, error) {
		return newReceiver(set, cfg.(*Config))
	})
	if err != nil {
		return nil, err
	}
	setNext(r.Value, next)
	return r, nil
}

func createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	return create(set, cfg, next, (*ebpfReceiver).setMetrics)
}

func createLogs(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	return create(set, cfg, next, (*ebpfReceiver).setLogs)
}

func createProfiles(_ context.Context, set receiver.Settings, cfg component.Config, next xconsumer.Profiles) (xreceiver.Profiles, error) {
	return create(set, cfg, next, (*ebpfReceiver).setProfiles)
}
