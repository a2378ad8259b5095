package ebpfprocessreceiver

import (
	"context"
	"os"
	"reflect"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/monitor/procfs"
	"github.com/contprof/contprof/internal/testhelper/proftest"
	"github.com/contprof/contprof/internal/testhelper/workload"
	"github.com/contprof/contprof/receiver/ebpfprocessreceiver/internal/metadata"
)

func startSleep(t *testing.T, env ...string) int {
	t.Helper()
	return workload.StartSleeper(t, env...).Process.Pid
}

func newTestScraper(t *testing.T, cfg *Config) *scraper {
	t.Helper()
	s, err := newScraper(cfg, receivertest.NewNopSettings(metadata.Type), nil, newTestHTTPMonitor(cfg.HTTP, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

// byPID indexes the process resources of md by process.pid; the host
// resource (no pid) goes under 0.
func byPID(md pmetric.Metrics) map[int64]pmetric.ResourceMetrics {
	out := map[int64]pmetric.ResourceMetrics{}
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		rm := md.ResourceMetrics().At(i)
		pid := int64(0)
		if v, ok := rm.Resource().Attributes().Get("process.pid"); ok {
			pid = v.Int()
		}
		out[pid] = rm
	}
	return out
}

func metricNames(rm pmetric.ResourceMetrics) map[string]pmetric.Metric {
	out := map[string]pmetric.Metric{}
	ms := rm.ScopeMetrics().At(0).Metrics()
	for i := 0; i < ms.Len(); i++ {
		out[ms.At(i).Name()] = ms.At(i)
	}
	return out
}

// TestScraperEmitsProcessMetrics runs with each process source.
func TestScraperEmitsProcessMetrics(t *testing.T) {
	for _, src := range []string{ProcessSourceProc, ProcessSourceBPF} {
		t.Run(src, func(t *testing.T) {
			if src == ProcessSourceBPF {
				proftest.RequireEBPF(t, "the BPF task iterator")
			}
			testScraperEmitsProcessMetrics(t, src)
		})
	}
}

func testScraperEmitsProcessMetrics(t *testing.T, src string) {
	pid := startSleep(t, "OTEL_SERVICE_NAME=checkout", "OTEL_RESOURCE_ATTRIBUTES=service.instance.id=checkout-1")
	cfg := createDefaultConfig().(*Config)
	cfg.Include.PIDs = []int{pid}
	cfg.ProcessSource = src
	s := newTestScraper(t, cfg)
	if got := s.scanner.Source().String(); got != src {
		t.Fatalf("scanner source %s, want %s", got, src)
	}

	md, err := s.scrape(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res := byPID(md)
	rm, ok := res[int64(pid)]
	if !ok || len(res) != 2 {
		t.Fatalf("want the child's and the host's resource, got %d resources", len(res))
	}
	attrs := rm.Resource().Attributes().AsRaw()
	host, _ := os.Hostname()
	for k, want := range map[string]any{
		"service.name":            "checkout",
		"service.instance.id":     "checkout-1",
		"process.executable.name": "sleep",
		"process.command_line":    "sleep 1000",
		"process.parent_pid":      int64(os.Getpid()),
		"host.name":               host,
	} {
		if attrs[k] != want {
			t.Errorf("%s = %v, want %v", k, attrs[k], want)
		}
	}
	ct, err := time.Parse(time.RFC3339Nano, attrs["process.creation.time"].(string))
	if err != nil || time.Since(ct) > time.Minute {
		t.Errorf("process.creation.time %v: %v", attrs["process.creation.time"], err)
	}
	ms := metricNames(rm)
	if _, ok := ms["process.cpu.utilization"]; ok {
		t.Error("utilization emitted on first sight")
	}
	if m := ms["process.thread.count"]; m.Sum().DataPoints().Len() != 1 || m.Sum().DataPoints().At(0).IntValue() != 1 {
		t.Errorf("process.thread.count: %v", m.Sum().DataPoints().Len())
	}
	if m := ms["process.memory.usage"]; m.Sum().DataPoints().Len() != 1 || m.Sum().DataPoints().At(0).IntValue() <= 0 {
		t.Error("process.memory.usage missing")
	}
	cpu := ms["process.cpu.time"].Sum().DataPoints()
	if cpu.Len() != 2 {
		t.Fatalf("process.cpu.time has %d points, want user and system", cpu.Len())
	}
	if start := cpu.At(0).StartTimestamp().AsTime(); !start.Equal(ct) {
		t.Errorf("cpu.time start %v, want the process creation time %v", start, ct)
	}
	hostMs := metricNames(res[0])
	if hostMs["system.cpu.load_average.1m"].Gauge().DataPoints().Len() != 1 {
		t.Error("no load average on the host resource")
	}
	if res[0].Resource().Attributes().Len() != 1 {
		t.Errorf("host resource attributes %v", res[0].Resource().Attributes().AsRaw())
	}

	time.Sleep(100 * time.Millisecond)
	md, err = s.scrape(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	u := metricNames(byPID(md)[int64(pid)])["process.cpu.utilization"]
	if u.Gauge().DataPoints().Len() != 1 {
		t.Fatal("no utilization on the second scrape")
	}
	if v := u.Gauge().DataPoints().At(0).DoubleValue(); v < 0 || v > 0.1 {
		t.Errorf("utilization of an idle sleep = %v", v)
	}
}

func TestScraperCommandLineOff(t *testing.T) {
	pid := startSleep(t)
	cfg := createDefaultConfig().(*Config)
	cfg.Include.CommandLineRegex = "^sleep 1000$"
	cfg.Include.PIDs = []int{pid}
	cfg.ResourceAttributes.ProcessCommandLine.Enabled = false
	s := newTestScraper(t, cfg)
	md, err := s.scrape(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rm, ok := byPID(md)[int64(pid)]
	if !ok {
		t.Fatal("child not reported")
	}
	if _, ok := rm.Resource().Attributes().Get("process.command_line"); ok {
		t.Error("process.command_line emitted although disabled")
	}
}

func TestScraperPolicyTargets(t *testing.T) {
	checkout := startSleep(t, "OTEL_SERVICE_NAME=checkout")
	other := startSleep(t, "OTEL_SERVICE_NAME=cart")
	cfg := createDefaultConfig().(*Config)
	cfg.Include.PIDs = []int{checkout, other}
	s := newTestScraper(t, cfg)

	pols := []policy.Policy{{
		Name:     "checkout-cpu",
		Selector: policy.Selector{"service.name": {Exact: "checkout"}},
		Target:   policy.Target("on_cpu"),
		Items:    []policy.Item{{Monitor: policy.Monitor("process_cpu"), Threshold: 80, Period: 10, Count: 5}},
	}}
	if err := policy.Validate(pols); err != nil {
		t.Fatal(err)
	}
	set := policy.NewSet(pols, time.Now())
	s.policies = func() *policy.Set { return set }

	for range 2 {
		md, err := s.scrape(context.Background(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		res := byPID(md)
		if _, ok := res[int64(checkout)]; !ok {
			t.Fatal("targeted process not reported")
		}
		if _, ok := res[int64(other)]; ok {
			t.Fatal("process no policy selects was reported")
		}
	}
	// A new policy set that selects nothing drops it on the next scrape.
	set = policy.NewSet(nil, time.Now())
	md, err := s.scrape(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := byPID(md)[int64(checkout)]; ok {
		t.Fatal("still reported after the policy went away")
	}
	if len(s.targets) > 2 {
		t.Fatalf("%d target decisions kept for 2 processes", len(s.targets))
	}
}

// BenchmarkScrape is one full scrape of every process on the host: the
// /proc scan plus building the pdata metrics.
func BenchmarkScrape(b *testing.B) {
	s, err := newScraper(createDefaultConfig().(*Config), receivertest.NewNopSettings(metadata.Type), nil, newTestHTTPMonitor(createDefaultConfig().(*Config).HTTP, nil))
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	if _, err := s.scrape(context.Background(), time.Now()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	resources := 0
	for b.Loop() {
		md, err := s.scrape(context.Background(), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		resources = md.ResourceMetrics().Len()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(resources), "ns/resource")
	b.ReportMetric(float64(resources), "resources")
}

// The resource a process's metrics carry is procfs's description of it,
// which the extension's manual tasks use too.
func TestResourceIsProcfsResource(t *testing.T) {
	pid := startSleep(t, "OTEL_RESOURCE_ATTRIBUTES=service.name=res-svc,service.instance.id=r1")
	s := newTestScraper(t, createDefaultConfig().(*Config))
	md, err := s.scrape(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rm, ok := byPID(md)[int64(pid)]
	if !ok {
		t.Fatalf("no metrics for pid %d", pid)
	}
	in, err := procfs.Lookup(procfs.Config{}, pid)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rm.Resource().Attributes().AsRaw(), in.Resource(); !reflect.DeepEqual(got, want) {
		t.Fatalf("metrics resource %v\nprocfs resource  %v", got, want)
	}
}
