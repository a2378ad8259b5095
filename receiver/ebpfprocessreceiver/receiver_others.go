//go:build !linux

package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"context"
	"fmt"
	"runtime"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/xconsumer"
	"go.opentelemetry.io/collector/receiver"
)

// ebpfReceiver outside Linux: the factory and configuration exist so a
// distribution that includes the receiver builds and validates its
// configuration everywhere (as hostmetricsreceiver's scrapers do), but /proc
// and eBPF are Linux's, so Start refuses with an error saying so.
type ebpfReceiver struct{}

func newReceiver(receiver.Settings, *Config) (*ebpfReceiver, error) { return &ebpfReceiver{}, nil }

func (*ebpfReceiver) setMetrics(consumer.Metrics)    {}
func (*ebpfReceiver) setLogs(consumer.Logs)          {}
func (*ebpfReceiver) setProfiles(xconsumer.Profiles) {}

// Start fails: the receiver reads /proc and loads eBPF programs.
func (*ebpfReceiver) Start(context.Context, component.Host) error {
	return fmt.Errorf("ebpfprocess receiver: Linux only (it reads /proc and loads eBPF programs); this collector runs on %s/%s", runtime.GOOS, runtime.GOARCH)
}

// Shutdown has nothing to stop.
func (*ebpfReceiver) Shutdown(context.Context) error { return nil }
