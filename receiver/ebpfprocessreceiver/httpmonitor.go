package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"context"
	"fmt"
	"slices"
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

// httpMonitor loads the eBPF HTTP monitor only while it is needed (a policy
// uses an HTTP monitor, or http.monitor is "always") and keeps its PID set
// on the processes the scraper reports.
type httpMonitor struct {
	cfg       HTTPConfig
	logger    *zap.Logger
	telemetry *metadata.TelemetryBuilder
	// reportErr surfaces a failed load through component status.
	reportErr func(error)
	// hub receives every exchange, for network tasks.
	hub *exchangeHub

	mon       *httpmon.Monitor
	lastErr   time.Time
	pids      []int
	lastStats httpmon.Stats
	// neededSet and needed cache wanted's answer for one policy set.
	neededSet *policy.Set
	needed    bool
}

// wanted reports whether the monitor should be loaded under set.
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

// sync loads or unloads the monitor for set and points it at pids (sorted).
// It returns the exchanges completed since the last call, by PID.
func (h *httpMonitor) sync(now time.Time, set *policy.Set, pids []int) map[int]*httpmon.ProcessHTTP {
	if !h.wanted(set) {
		h.close()
		return nil
	}
	if h.mon == nil {
		if now.Sub(h.lastErr) < openRetry {
			return nil
		}
		m, err := httpmon.Open(httpmon.Options{MaxPathsPerProcess: h.cfg.MaxPathsPerProcess})
		if err != nil {
			h.lastErr = now
			err = fmt.Errorf("http monitoring is off: %w", err)
			h.logger.Warn("HTTP monitor not loaded", zap.Error(err))
			h.reportErr(err)
			return nil
		}
		h.mon, h.pids, h.lastStats = m, nil, httpmon.Stats{}
		if h.hub != nil {
			m.SetObserver(h.hub.publish)
		}
		h.logger.Info("HTTP monitor loaded", zap.String("attachment", m.Attachment()), zap.Strings("notes", m.Notes()))
	}
	if !slices.Equal(pids, h.pids) {
		if err := h.mon.SetPIDs(pids); err != nil {
			h.logger.Warn("HTTP monitor PID set not updated", zap.Error(err))
		} else {
			h.pids = append(h.pids[:0], pids...)
		}
	}
	h.recordStats()
	return h.mon.Drain()
}

// recordStats adds the monitor's counters since the last call to the
// receiver's own telemetry.
func (h *httpMonitor) recordStats() {
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

func (h *httpMonitor) close() {
	if h.mon != nil {
		_ = h.mon.Close()
		h.mon = nil
		h.pids = nil
	}
}
