package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/receiver/ebpfprocessreceiver/internal/metadata"
)

// scraper turns /proc (and later eBPF HTTP) readings into metrics.
// HOOK POINT for internal/procfs wiring.
type scraper struct {
	mb *metadata.MetricsBuilder
}

func newScraper(cfg *Config, set receiver.Settings, _ control.Controller) (*scraper, error) {
	return &scraper{mb: metadata.NewMetricsBuilder(cfg.MetricsBuilderConfig, set)}, nil
}

func (s *scraper) scrape(_ context.Context, _ time.Time) (pmetric.Metrics, error) {
	return s.mb.Emit(), nil
}

func (s *scraper) close() {}
