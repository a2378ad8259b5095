//go:build linux

package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"context"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/monitor/procfs"
	"github.com/contprof/contprof/receiver/ebpfprocessreceiver/internal/metadata"
)

// scraper turns /proc (and later eBPF HTTP) readings into metrics.
type scraper struct {
	mb      *metadata.MetricsBuilder
	scanner *procfs.Scanner
	// policies is set with scope policy_targets: only processes some
	// policy selector matches are reported.
	policies func() *policy.Set

	// targets caches selector decisions per process identity for one
	// policy set; next is filled during a scrape and replaces it, which
	// also forgets processes that are gone.
	targetSet   *policy.Set
	targets     map[*procfs.Info]bool
	targetsNext map[*procfs.Info]bool

	// resources caches the built resource per process identity (an Info
	// never changes), swapped each scrape like targets.
	resources     map[*procfs.Info]pcommon.Resource
	resourcesNext map[*procfs.Info]pcommon.Resource

	// allPolicies reads the current policy set (nil without extension);
	// the HTTP monitor is loaded by what it asks for.
	allPolicies func() *policy.Set
	http        *httpMonitor
	// lookback, if set, selects the processes to record from each scan.
	lookback  *lookbackSync
	telemetry *metadata.TelemetryBuilder
	pids      []int
	lastTS    pcommon.Timestamp
}

func newScraper(cfg *Config, set receiver.Settings, ctrl control.PolicyReader, http *httpMonitor) (*scraper, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	src, err := procSource(cfg.ProcessSource)
	if err != nil {
		tb.Shutdown()
		return nil, err
	}
	sc, err := procfs.New(procfs.Config{
		Source:          src,
		HostName:        cfg.HostName,
		Include:         procFilter(cfg.Include),
		Exclude:         procFilter(cfg.Exclude),
		OmitCommandLine: !cfg.ResourceAttributes.ProcessCommandLine.Enabled,
		Logger:          set.Logger,
	})
	if err != nil {
		tb.Shutdown()
		return nil, err
	}
	s := &scraper{
		telemetry:   tb,
		http:        http,
		mb:          metadata.NewMetricsBuilder(cfg.MetricsBuilderConfig, set),
		scanner:     sc,
		targets:     map[*procfs.Info]bool{},
		targetsNext: map[*procfs.Info]bool{},

		resources:     map[*procfs.Info]pcommon.Resource{},
		resourcesNext: map[*procfs.Info]pcommon.Resource{},
	}
	http.setTelemetry(tb)
	if ctrl != nil {
		s.allPolicies = ctrl.Policies
		if cfg.Scope == ScopePolicyTargets {
			s.policies = ctrl.Policies
		}
	}
	return s, nil
}

func procFilter(f ProcessFilter) procfs.Filter {
	pf := procfs.Filter{Executables: f.Executables, PIDs: f.PIDs}
	if f.ExecutableRegex != "" {
		pf.ExecutableRegex = []string{f.ExecutableRegex}
	}
	if f.CommandLineRegex != "" {
		pf.CommandLineRegex = []string{f.CommandLineRegex}
	}
	return pf
}

func (s *scraper) scrape(ctx context.Context, now time.Time) (pmetric.Metrics, error) {
	snap, err := s.scanner.Scan(now)
	if err != nil {
		return pmetric.NewMetrics(), err
	}
	ts := pcommon.NewTimestampFromTime(now)
	var set *policy.Set
	if s.policies != nil {
		set = s.policies()
	}
	s.pids = s.pids[:0]
	for i := range snap.Samples {
		smp := &snap.Samples[i]
		if set != nil && !s.targeted(smp.Info, set) {
			continue
		}
		s.pids = append(s.pids, int(smp.Info.PID))
		s.mb.RecordProcessCPUTimeDataPoint(ts, smp.UserSeconds, metadata.AttributeCPUModeUser)
		s.mb.RecordProcessCPUTimeDataPoint(ts, smp.SystemSeconds, metadata.AttributeCPUModeSystem)
		if smp.HasUtilization {
			s.mb.RecordProcessCPUUtilizationDataPoint(ts, smp.Utilization)
		}
		s.mb.RecordProcessThreadCountDataPoint(ts, smp.Threads)
		s.mb.RecordProcessMemoryUsageDataPoint(ts, smp.RSSBytes)
		s.mb.EmitForResource(
			metadata.WithResource(s.resource(smp.Info)),
			metadata.WithStartTimeOverride(pcommon.NewTimestampFromTime(smp.Info.StartTime)),
		)
	}
	if set != nil {
		s.targets, s.targetsNext = s.targetsNext, s.targets
		clear(s.targetsNext)
	}
	s.resources, s.resourcesNext = s.resourcesNext, s.resources
	clear(s.resourcesNext)
	if snap.HasLoad {
		s.mb.RecordSystemCPULoadAverage1mDataPoint(ts, snap.Load1)
		rb := s.mb.NewResourceBuilder()
		rb.SetHostName(snap.HostName)
		s.mb.EmitForResource(metadata.WithResource(rb.Emit()))
	}
	var all *policy.Set
	if s.allPolicies != nil {
		all = s.allPolicies()
	}
	if s.lookback != nil {
		s.lookback.sync(ctx, &snap, all, s.telemetry)
	}
	slices.Sort(s.pids)
	byPID := s.http.sync(now, all, s.pids)
	md := s.mb.Emit()
	start := s.lastTS
	if start == 0 {
		start = ts
	}
	appendHTTP(md, byPID, start, ts)
	s.lastTS = ts
	return md, nil
}

// targeted reports whether some policy selector matches the process.
func (s *scraper) targeted(in *procfs.Info, set *policy.Set) bool {
	if set != s.targetSet {
		s.targetSet = set
		clear(s.targets)
	}
	ok, known := s.targets[in]
	if !known {
		for i := range set.Policies {
			if set.Policies[i].Selector.Matches(in.Attr) {
				ok = true
				break
			}
		}
	}
	s.targetsNext[in] = ok
	return ok
}

func (s *scraper) resource(in *procfs.Info) pcommon.Resource {
	r, ok := s.resources[in]
	if !ok {
		r = s.buildResource(in)
	}
	s.resourcesNext[in] = r
	return r
}

func (s *scraper) buildResource(in *procfs.Info) pcommon.Resource {
	rb := s.mb.NewResourceBuilder()
	rb.SetHostName(in.HostName)
	rb.SetProcessPid(int64(in.PID))
	rb.SetProcessParentPid(int64(in.PPID))
	rb.SetProcessExecutableName(in.ExeName)
	rb.SetProcessCreationTime(in.CreationTime())
	rb.SetServiceName(in.ServiceName)
	// The attributes a process may not have are left out rather than empty.
	for _, opt := range []struct {
		v   string
		set func(string)
	}{
		{in.ExePath, rb.SetProcessExecutablePath},
		{in.CommandLine, rb.SetProcessCommandLine},
		{in.Owner, rb.SetProcessOwner},
		{in.ServiceInstanceID, rb.SetServiceInstanceID},
		{in.ContainerID, rb.SetContainerID},
		{in.PodUID, rb.SetK8sPodUID},
	} {
		if opt.v != "" {
			opt.set(opt.v)
		}
	}
	return rb.Emit()
}

func (s *scraper) close() {
	s.http.setTelemetry(nil)
	s.scanner.Close()
	s.telemetry.Shutdown()
}
