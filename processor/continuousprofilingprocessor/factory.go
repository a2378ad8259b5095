package continuousprofilingprocessor // import "github.com/contprof/contprof/processor/continuousprofilingprocessor"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"

	"github.com/contprof/contprof/internal/decide/window"
	"github.com/contprof/contprof/processor/continuousprofilingprocessor/internal/metadata"
)

// NewFactory creates the continuousprofiling processor factory.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		metadata.Type,
		createDefaultConfig,
		processor.WithMetrics(createMetrics, metadata.MetricsStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		IdleTimeout:          window.DefaultIdleTimeout,
		MaxProcesses:         window.DefaultMaxProcesses,
		CompletionDelay:      window.DefaultCompletionDelay,
		RefusedRetryInterval: window.DefaultRefusedBackoff,
	}
}

func createMetrics(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Metrics) (processor.Metrics, error) {
	p, err := newProcessor(set, cfg.(*Config))
	if err != nil {
		return nil, err
	}
	return createMetricsWith(ctx, set, cfg, next, p)
}

func createMetricsWith(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Metrics, p *cpProcessor) (processor.Metrics, error) {
	return processorhelper.NewMetrics(ctx, set, cfg, next, p.processMetrics,
		processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		processorhelper.WithStart(p.start),
		processorhelper.WithShutdown(p.shutdown),
	)
}
