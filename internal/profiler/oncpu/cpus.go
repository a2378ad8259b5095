//go:build linux

package oncpu

import (
	"fmt"

	"github.com/contprof/contprof/internal/monitor/procfs"
)

// onlineCPUs lists the CPUs a perf event is opened on.
func onlineCPUs() ([]int, error) {
	cpus, err := procfs.OnlineCPUs()
	if err != nil {
		return nil, fmt.Errorf("on_cpu: list online CPUs: %w", err)
	}
	return cpus, nil
}

// parseCPUList parses "0-3,5,7-8".
func parseCPUList(s string) ([]int, error) {
	cpus, err := procfs.ParseCPUList(s)
	if err != nil {
		return nil, fmt.Errorf("on_cpu: %w", err)
	}
	return cpus, nil
}
