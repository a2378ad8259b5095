package continuousprofilingprocessor // import "github.com/contprof/contprof/processor/continuousprofilingprocessor"

import (
	"runtime"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/contprof/contprof/internal/decide/window"
)

// metricKind says how a metric is read into the windows.
type metricKind int

const (
	kindNone    metricKind = iota
	kindCPUUtil            // gauge 0..1 of the CPUs available (per state: summed)
	kindCPUTime            // cumulative CPU seconds (per state: summed); rate / CPUs
	kindThreads            // gauge or sum of threads
	kindLoad               // host load average, 1 minute
	kindHTTP               // server request duration histogram
)

// metricSources is the one table of the metric names the processor decides
// on: the semantic-convention names and the names widely used sources emit
// today for the same thing (README "Metric sources" shows it).
var metricSources = map[string]metricKind{
	// process_cpu
	"process.cpu.utilization":     kindCPUUtil, // semconv; ebpfprocess, hostmetrics (opt-in), OBI
	"process.cpu.time":            kindCPUTime, // semconv; hostmetrics (default on), OBI, ebpfprocess
	"otelcol_process_cpu_seconds": kindCPUTime, // the Collector's own telemetry
	// process_thread_count
	"process.thread.count": kindThreads, // semconv; ebpfprocess
	"process.threads":      kindThreads, // hostmetrics process scraper
	// system_load
	"system.cpu.load_average.1m": kindLoad, // semconv; hostmetrics load scraper, ebpfprocess
	// http_error_rate, http_avg_response_time
	"http.server.request.duration": kindHTTP, // semconv (s); OBI, OpenTelemetry SDKs, ebpfprocess
	"http.server.duration":         kindHTTP, // semconv before 1.20 (ms); older SDKs and agents
}

// perProcess reports whether kind needs a process resource.
func (k metricKind) perProcess() bool { return k != kindLoad && k != kindNone }

// hasCPUUtil reports whether the resource's metrics carry a utilization,
// which then wins over a CPU time counter of the same process (a source
// emitting both must not be counted twice, and utilization knows the CPUs
// available to the process).
func hasCPUUtil(sms pmetric.ScopeMetricsSlice) bool {
	for i := 0; i < sms.Len(); i++ {
		ms := sms.At(i).Metrics()
		for j := 0; j < ms.Len(); j++ {
			if metricSources[ms.At(j).Name()] == kindCPUUtil {
				return true
			}
		}
	}
	return false
}

// numCPU is the CPUs a CPU time rate is divided by: this host's, as the
// source runs next to the collector (hostmetrics, OBI and the Collector
// itself all measure the host they run on).
var numCPU = runtime.NumCPU()

// ingestCPUTime turns cumulative CPU seconds into percent of the CPUs: the
// rate between two points of a series (per state), summed over the states
// of one timestamp. The first point of a series only sets its base.
func (p *cpProcessor) ingestCPUTime(proc *window.Proc, m pmetric.Metric) {
	if m.Type() != pmetric.MetricTypeSum {
		return
	}
	dps := m.Sum().DataPoints()
	byTS := map[pcommon.Timestamp]float64{}
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		// The hash of the metric name keeps these series apart from the
		// HTTP histograms' in the same per-process state.
		h := p.seriesHash(dp.Attributes()) ^ cpuTimeSeriesSalt
		dCount, dSum, ok := proc.Cumulative(h, int64(dp.StartTimestamp()), int64(dp.Timestamp()), uint64(dp.Timestamp()), numberValue(dp))
		if !ok || dCount == 0 || dCount == uint64(dp.Timestamp()) || dSum < 0 {
			continue // first point, restarted series (no previous time) or reset
		}
		// dCount is the elapsed time in ns (the timestamp rides as the
		// "count"), dSum the CPU seconds used meanwhile.
		byTS[dp.Timestamp()] += dSum / (float64(dCount) / 1e9)
	}
	for ts, cores := range byTS {
		p.eng.SetCPU(proc, p.second(ts), cores/float64(numCPU)*100)
	}
}

const cpuTimeSeriesSalt = 0x9e3779b97f4a7c15
