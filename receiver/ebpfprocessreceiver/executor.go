package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"context"

	"github.com/contprof/contprof/internal/control"
)

// startExecutor registers the receiver as the executor of profiling tasks.
// HOOK POINT for the on-CPU / off-CPU / network task runners.
func startExecutor(_ context.Context, _ *ebpfReceiver, _ control.Controller) (stop func(), err error) {
	return func() {}, nil
}
