//go:build linux

package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/monitor/httpmon"
	"github.com/contprof/contprof/receiver/ebpfprocessreceiver/internal/metadata"
)

// openRetry is how long a failed load of the HTTP monitor waits before the
// next attempt, so a missing privilege is not retried every second.
const openRetry = time.Minute

// httpMonitor loads the eBPF HTTP monitor only while it is needed: a policy
// uses an HTTP monitor (or http.monitor is "always"), then it watches the
// processes the scraper reports and their exchanges become the processes'
// HTTP metrics; or a network task runs (whatever triggered it), then it
// watches the task's processes for the task's lifetime, reference-counted,
// and their exchanges go to the task through hub. http.monitor "never"
// keeps it unloaded. It is safe for concurrent use.
type httpMonitor struct {
	cfg    HTTPConfig
	logger *zap.Logger
	// reportErr surfaces a failed load through component status.
	reportErr func(error)
	// hub receives every exchange, for network tasks.
	hub *exchangeHub

	mu sync.Mutex
	// telemetry is set by the scraper (nil without a metrics pipeline).
	telemetry *metadata.TelemetryBuilder
	mon       *httpmon.Monitor
	lastErr   time.Time
	pids      []int
	// observed are the network tasks' processes as last given to the
	// monitor: only their exchanges are sent one by one (to hub).
	observed  []int
	lastStats httpmon.Stats
	// scraped are the processes the scraper wants watched (nil unless a
	// policy wants HTTP metrics); taskPIDs counts the network tasks
	// watching each process.
	scraped     []int
	policyWants bool
	taskPIDs    map[int]int
	// neededSet and needed cache wanted's answer for one policy set.
	neededSet *policy.Set
	needed    bool
}

// wanted reports whether the monitor should be loaded for the processes'
// own HTTP metrics under set.
func (h *httpMonitor) wanted(set *policy.Set) bool {
	switch h.cfg.Monitor {
	case HTTPMonitorAlways:
		return true
	case HTTPMonitorNever:
		return false
	}
	if set == nil {
		return false
	}
	if set != h.neededSet {
		h.neededSet, h.needed = set, usesHTTP(set)
	}
	return h.needed
}

func usesHTTP(set *policy.Set) bool {
	for _, p := range set.Policies {
		for _, it := range p.Items {
			if it.Monitor.IsHTTP() {
				return true
			}
		}
	}
	return false
}

// sync loads or unloads the monitor for set and points it at pids (sorted)
// and the network tasks' processes. It returns the exchanges of pids
// completed since the last call, by PID, when set wants HTTP metrics.
func (h *httpMonitor) sync(now time.Time, set *policy.Set, pids []int) map[int]*httpmon.ProcessHTTP {
	h.mu.Lock()
	defer h.mu.Unlock()
	wanted := h.wanted(set)
	h.policyWants = wanted
	h.scraped = h.scraped[:0]
	if wanted {
		h.scraped = append(h.scraped, pids...)
	}
	if !h.updateLocked(now) {
		return nil
	}
	h.recordStats()
	byPID := h.mon.Drain()
	if !wanted {
		return nil // drained for the tasks only: they get exchanges through hub
	}
	return byPID
}

// acquire keeps the monitor loaded and watching pids until release is
// called: for a network task, whatever triggered it. A monitor that cannot
// load only costs the task its HTTP exchanges (logged, reported).
func (h *httpMonitor) acquire(pids []int) (release func()) {
	h.mu.Lock()
	if h.cfg.Monitor == HTTPMonitorNever {
		h.mu.Unlock()
		return func() {}
	}
	if h.taskPIDs == nil {
		h.taskPIDs = map[int]int{}
	}
	for _, p := range pids {
		h.taskPIDs[p]++
	}
	load := h.mon == nil
	h.mu.Unlock()
	// Loading takes a while: not under the lock the scraper's loop takes
	// every second. A task tries even if a load failed recently.
	var m *httpmon.Monitor
	var err error
	if load {
		m, err = h.open()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if load {
		h.installLocked(time.Now(), m, err)
	}
	h.updateLocked(time.Now())
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			for _, p := range pids {
				if h.taskPIDs[p]--; h.taskPIDs[p] <= 0 {
					delete(h.taskPIDs, p)
				}
			}
			h.updateLocked(time.Now())
		})
	}
}

func (h *httpMonitor) open() (*httpmon.Monitor, error) {
	return httpmon.Open(httpmon.Options{MaxPathsPerProcess: h.cfg.MaxPathsPerProcess})
}

// installLocked makes m, just opened, the monitor (closing it if another
// was installed meanwhile), or reports why it could not be opened.
func (h *httpMonitor) installLocked(now time.Time, m *httpmon.Monitor, err error) {
	switch {
	case err != nil:
		h.lastErr = now
		err = fmt.Errorf("http monitoring is off: %w", err)
		h.logger.Warn("HTTP monitor not loaded", zap.Error(err))
		h.reportErr(err)
	case h.mon != nil:
		_ = m.Close()
	default:
		h.mon, h.pids, h.observed, h.lastStats = m, nil, nil, httpmon.Stats{}
		if h.hub != nil {
			m.SetObserver(h.hub.publish)
		}
		h.logger.Info("HTTP monitor loaded", zap.String("attachment", m.Attachment()), zap.Strings("notes", m.Notes()))
	}
}

// updateLocked loads, points or unloads the monitor for what the scraper
// and the tasks want; it reports whether the monitor is loaded.
func (h *httpMonitor) updateLocked(now time.Time) bool {
	if !h.policyWants && len(h.taskPIDs) == 0 {
		h.closeLocked()
		return false
	}
	if h.mon == nil {
		if now.Sub(h.lastErr) < openRetry {
			return false
		}
		m, err := h.open()
		if h.installLocked(now, m, err); h.mon == nil {
			return false
		}
	}
	tasks := make([]int, 0, len(h.taskPIDs))
	for p := range h.taskPIDs {
		tasks = append(tasks, p)
	}
	slices.Sort(tasks)
	want := append(slices.Clone(h.scraped), tasks...)
	slices.Sort(want)
	want = slices.Compact(want)
	if !slices.Equal(want, h.pids) {
		if err := h.mon.SetPIDs(want); err != nil {
			h.logger.Warn("HTTP monitor PID set not updated", zap.Error(err))
		} else {
			h.pids = want
		}
	}
	// The scraper's processes are counted in the kernel; the tasks' also
	// need each exchange (peer attribution).
	if !slices.Equal(tasks, h.observed) {
		if err := h.mon.SetObservedPIDs(tasks); err != nil {
			h.logger.Warn("HTTP monitor observed PID set not updated", zap.Error(err))
		} else {
			h.observed = tasks
		}
	}
	return true
}

// setTelemetry makes the monitor's counters part of the scraper's
// telemetry (nil: none).
func (h *httpMonitor) setTelemetry(tb *metadata.TelemetryBuilder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.telemetry = tb
}

// recordStats adds the monitor's counters since the last call to the
// receiver's own telemetry.
func (h *httpMonitor) recordStats() {
	if h.telemetry == nil {
		return
	}
	st, err := h.mon.Stats()
	if err != nil {
		return
	}
	ctx := context.Background()
	h.telemetry.ReceiverEbpfprocessHTTPExchanges.Add(ctx, int64(st.Exchanges-h.lastStats.Exchanges))
	h.telemetry.ReceiverEbpfprocessHTTPExchangesLost.Add(ctx, int64(st.Lost+st.Dropped-h.lastStats.Lost-h.lastStats.Dropped))
	h.telemetry.ReceiverEbpfprocessHTTPUnmatched.Add(ctx, int64(st.UnmatchedRequests+st.UnmatchedResponses-h.lastStats.UnmatchedRequests-h.lastStats.UnmatchedResponses))
	h.lastStats = st
}

// appendHTTP adds each process's HTTP histograms to its resource in md.
func appendHTTP(md pmetric.Metrics, byPID map[int]*httpmon.ProcessHTTP, start, now pcommon.Timestamp) {
	if len(byPID) == 0 {
		return
	}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		pid, ok := rm.Resource().Attributes().Get("process.pid")
		if !ok {
			continue
		}
		ph := byPID[int(pid.Int())]
		if ph == nil {
			continue
		}
		sms := rm.ScopeMetrics()
		var sm pmetric.ScopeMetrics
		if sms.Len() > 0 {
			sm = sms.At(0)
		} else {
			sm = sms.AppendEmpty()
			sm.Scope().SetName(metadata.ScopeName)
		}
		httpmon.AppendMetrics(sm, start, now, ph)
	}
}

// close unloads the monitor whatever wants it (at Shutdown).
func (h *httpMonitor) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closeLocked()
}

func (h *httpMonitor) closeLocked() {
	if h.mon != nil {
		_ = h.mon.Close()
		h.mon = nil
		h.pids, h.observed = nil, nil
	}
}
