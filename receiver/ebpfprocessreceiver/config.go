package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/contprof/contprof/internal/monitor/procfs"
	"github.com/contprof/contprof/receiver/ebpfprocessreceiver/internal/metadata"
)

// Scope values: which processes are watched.
const (
	ScopeAll           = "all"
	ScopePolicyTargets = "policy_targets"
)

// Process sources: how processes are listed and sampled each interval.
const (
	ProcessSourceAuto = "auto"
	ProcessSourceProc = "proc"
	ProcessSourceBPF  = "bpf"
)

// HTTP monitor modes.
const (
	HTTPMonitorAuto   = "auto"
	HTTPMonitorAlways = "always"
	HTTPMonitorNever  = "never"
)

// Config is the receiver's configuration.
type Config struct {
	// CollectionInterval is how often processes are discovered and measured.
	CollectionInterval time.Duration `mapstructure:"collection_interval"`

	metadata.MetricsBuilderConfig `mapstructure:",squash"`

	// Include, when set, watches only processes matching it; Exclude drops
	// processes matching it.
	Include ProcessFilter `mapstructure:"include"`
	Exclude ProcessFilter `mapstructure:"exclude"`

	// Scope is "all" (every process passing the filters) or
	// "policy_targets" (only processes some policy selector matches).
	Scope string `mapstructure:"scope"`

	// ProcessSource is "bpf" (a BPF task iterator reads every process in
	// one pass; /proc only for new processes), "proc" (/proc/PID/stat of
	// every process every interval) or "auto" (bpf where it loads, else
	// proc).
	ProcessSource string `mapstructure:"process_source"`

	// PolicyExtension names the profilingpolicy extension; it may be left out
	// when exactly one is configured.
	PolicyExtension component.ID `mapstructure:"policy_extension"`

	Profiling ProfilingConfig `mapstructure:"profiling"`
	HTTP      HTTPConfig      `mapstructure:"http"`

	// HostName is the host.name of every process; empty means the
	// machine's host name. In a Kubernetes pod the host name is the pod's,
	// so the DaemonSet passes the node name (downward API).
	HostName string `mapstructure:"host_name"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// ProcessFilter selects processes; a process matches when any listed
// condition matches.
type ProcessFilter struct {
	// Executables are exact executable names.
	Executables []string `mapstructure:"executables"`
	// ExecutableRegex is an RE2 regex on the executable name.
	ExecutableRegex string `mapstructure:"executable_regex"`
	// CommandLineRegex is an RE2 regex on the full command line.
	CommandLineRegex string `mapstructure:"command_line_regex"`
	// PIDs are process IDs.
	PIDs []int `mapstructure:"pids"`
}

// IsEmpty reports whether the filter has no condition.
func (f ProcessFilter) IsEmpty() bool {
	return len(f.Executables) == 0 && f.ExecutableRegex == "" && f.CommandLineRegex == "" && len(f.PIDs) == 0
}

// ProfilingConfig configures the profiling tasks.
type ProfilingConfig struct {
	OnCPU  OnCPUConfig  `mapstructure:"on_cpu"`
	OffCPU OffCPUConfig `mapstructure:"off_cpu"`
	// ReportInterval is how often a running task emits a profile; a final
	// one is emitted at its end.
	ReportInterval time.Duration `mapstructure:"report_interval"`
	// Lookback configures the always-on record of the processes policies
	// with a lookback select.
	Lookback LookbackConfig `mapstructure:"lookback"`
}

// LookbackConfig configures the lookback record: a low-rate on-CPU
// sampling of the processes some policy with a lookback selects, kept for
// that long so that a task's first report holds the seconds before its
// trigger.
type LookbackConfig struct {
	// Frequency is the sampling frequency in Hz (per CPU).
	Frequency int `mapstructure:"frequency"`
	// MaxMemory bounds, in bytes, the samples all processes' records hold
	// together; past it the oldest samples of the largest record go first.
	MaxMemory int64 `mapstructure:"max_memory"`
}

// OnCPUConfig configures on-CPU sampling.
type OnCPUConfig struct {
	// Frequency is the sampling frequency in Hz.
	Frequency int `mapstructure:"frequency"`
}

// OffCPUConfig configures off-CPU profiling.
type OffCPUConfig struct {
	// MinBlock ignores blocks shorter than this.
	MinBlock time.Duration `mapstructure:"min_block"`
}

// HTTPConfig configures eBPF HTTP monitoring.
type HTTPConfig struct {
	// Monitor is "auto" (loaded only when a policy uses an HTTP monitor),
	// "always" or "never".
	Monitor string `mapstructure:"monitor"`
	// MaxPathsPerProcess caps distinct url.path values per process; the rest
	// are reported as "_other".
	MaxPathsPerProcess int `mapstructure:"max_paths_per_process"`
}

func createDefaultConfig() component.Config {
	return &Config{
		CollectionInterval:   time.Second,
		MetricsBuilderConfig: metadata.DefaultMetricsBuilderConfig(),
		Scope:                ScopeAll,
		ProcessSource:        ProcessSourceAuto,
		Profiling: ProfilingConfig{
			OnCPU:          OnCPUConfig{Frequency: 99},
			OffCPU:         OffCPUConfig{MinBlock: 10 * time.Microsecond},
			ReportInterval: 10 * time.Second,
			Lookback:       LookbackConfig{Frequency: 19, MaxMemory: 16 << 20},
		},
		HTTP: HTTPConfig{Monitor: HTTPMonitorAuto, MaxPathsPerProcess: 100},
	}
}

// Validate checks the configuration; every error names the field and value.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.CollectionInterval < 100*time.Millisecond || cfg.CollectionInterval > time.Minute {
		errs = append(errs, fmt.Errorf("collection_interval: %v is out of range [100ms, 1m]", cfg.CollectionInterval))
	}
	switch cfg.Scope {
	case ScopeAll, ScopePolicyTargets:
	default:
		errs = append(errs, fmt.Errorf("scope: %q is not one of %q, %q", cfg.Scope, ScopeAll, ScopePolicyTargets))
	}
	if _, err := procSource(cfg.ProcessSource); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, cfg.Include.validate("include")...)
	errs = append(errs, cfg.Exclude.validate("exclude")...)
	if f := cfg.Profiling.OnCPU.Frequency; f < 1 || f > 1000 {
		errs = append(errs, fmt.Errorf("profiling.on_cpu.frequency: %d is out of range [1, 1000]", f))
	}
	if d := cfg.Profiling.OffCPU.MinBlock; d < 0 || d > time.Second {
		errs = append(errs, fmt.Errorf("profiling.off_cpu.min_block: %v is out of range [0, 1s]", d))
	}
	if d := cfg.Profiling.ReportInterval; d < time.Second || d > 10*time.Minute {
		errs = append(errs, fmt.Errorf("profiling.report_interval: %v is out of range [1s, 10m]", d))
	}
	if f := cfg.Profiling.Lookback.Frequency; f < 1 || f > 1000 {
		errs = append(errs, fmt.Errorf("profiling.lookback.frequency: %d Hz is out of range [1, 1000]", f))
	}
	if m := cfg.Profiling.Lookback.MaxMemory; m < 64<<10 || m > 4<<30 {
		errs = append(errs, fmt.Errorf("profiling.lookback.max_memory: %d bytes is out of range [64 KiB, 4 GiB]", m))
	}
	switch cfg.HTTP.Monitor {
	case HTTPMonitorAuto, HTTPMonitorAlways, HTTPMonitorNever:
	default:
		errs = append(errs, fmt.Errorf("http.monitor: %q is not one of %q, %q, %q", cfg.HTTP.Monitor, HTTPMonitorAuto, HTTPMonitorAlways, HTTPMonitorNever))
	}
	if n := cfg.HTTP.MaxPathsPerProcess; n < 1 || n > 10000 {
		errs = append(errs, fmt.Errorf("http.max_paths_per_process: %d is out of range [1, 10000]", n))
	}
	return errors.Join(errs...)
}

func (f ProcessFilter) validate(field string) []error {
	var errs []error
	for _, r := range []struct{ name, re string }{
		{"executable_regex", f.ExecutableRegex},
		{"command_line_regex", f.CommandLineRegex},
	} {
		if r.re == "" {
			continue
		}
		if _, err := regexp.Compile(r.re); err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %q is not a valid RE2 regex: %w", field, r.name, r.re, err))
		}
	}
	for i, pid := range f.PIDs {
		if pid <= 0 {
			errs = append(errs, fmt.Errorf("%s.pids[%d]: %d is not a valid PID", field, i, pid))
		}
	}
	return errs
}

// procSource maps process_source to the scanner's Source.
func procSource(s string) (procfs.Source, error) {
	switch s {
	case ProcessSourceAuto:
		return procfs.SourceAuto, nil
	case ProcessSourceProc:
		return procfs.SourceProc, nil
	case ProcessSourceBPF:
		return procfs.SourceBPF, nil
	}
	return 0, fmt.Errorf("process_source: %q is not one of %q, %q, %q", s, ProcessSourceAuto, ProcessSourceProc, ProcessSourceBPF)
}

// hostName is HostName, else the machine's host name (as the process
// scanner resolves it), for what the receiver reports without a process.
func (cfg *Config) hostName() string {
	if cfg.HostName != "" {
		return cfg.HostName
	}
	h, _ := os.Hostname()
	return h
}
