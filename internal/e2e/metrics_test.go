package e2e

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Metrics of a real child process reach an OTLP gRPC receiver through the
// ocb-built collector.
func TestProcessMetricsReachOTLP(t *testing.T) {
	sink := startOTLPSink(t)
	child := exec.Command("sleep", "300")
	child.Env = append(os.Environ(), "OTEL_SERVICE_NAME=e2e-sleeper")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })

	cfg := testConfig{Receiver: "include: { executables: [sleep] }", OTLP: sink.addr}.yaml()
	c := startCollector(t, writeConfig(t, cfg))
	c.waitFor("Everything is ready", time.Minute)

	pid := int64(child.Process.Pid)
	sink.waitMetrics(t, 30*time.Second, func(all []pmetric.Metrics) bool {
		seen := map[string]bool{}
		for _, md := range all {
			for i := 0; i < md.ResourceMetrics().Len(); i++ {
				rm := md.ResourceMetrics().At(i)
				attrs := rm.Resource().Attributes()
				p, ok := attrs.Get("process.pid")
				if !ok || p.Int() != pid {
					continue
				}
				if svc, ok := attrs.Get("service.name"); !ok || svc.Str() != "e2e-sleeper" {
					continue
				}
				for j := 0; j < rm.ScopeMetrics().Len(); j++ {
					ms := rm.ScopeMetrics().At(j).Metrics()
					for k := 0; k < ms.Len(); k++ {
						seen[ms.At(k).Name()] = true
					}
				}
			}
		}
		return seen["process.cpu.utilization"] && seen["process.thread.count"] && seen["process.memory.usage"]
	})
}
