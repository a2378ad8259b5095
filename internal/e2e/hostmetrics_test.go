package e2e

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/hostmetricsreceiver"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// TestHostmetricsFeedsProcessor: the contrib hostmetrics process scraper
// (v0.165.1, in this test's process) sends its metrics over OTLP gRPC to
// the built distribution, whose continuousprofiling processor decides on
// them alone (the ebpfprocess receiver there only runs tasks and watches
// no process): hostmetrics names the thread count process.threads, and a
// process_thread_count policy fires on it and profiles the process.
func TestHostmetricsFeedsProcessor(t *testing.T) {
	requireRoot(t)
	sink := startOTLPSink(t)
	// idlethreads: four threads; /proc's comm (hostmetrics' executable
	// name) keeps 15 characters.
	w := workload.Start(t, copyAs(t, workload.BuildC(t, "idlethreads.c"), "cp-hmthreads"))
	apiPort, otlpPort := freePort(t), freePort(t)
	api := apiURL(apiPort)
	cfg := fmt.Sprintf(`extensions:
  profilingpolicy:
    policies:
      - name: hm-threads
        selector: { process.executable.name: cp-hmthreads }
        target: on_cpu
        duration: 3s
        items:
          - { monitor: process_thread_count, threshold: 3, period: 3, count: 2 }
    api: { endpoint: "127.0.0.1:%d" }
receivers:
  otlp:
    protocols: { grpc: { endpoint: "127.0.0.1:%d" } }
  ebpfprocess:
    include: { executables: [no-such-process] }
processors:
  continuousprofiling: {}
exporters:
  debug: {}
  otlp_grpc:
    endpoint: %s
    tls: { insecure: true }
service:
  extensions: [profilingpolicy]
  pipelines:
    metrics: { receivers: [otlp], processors: [continuousprofiling], exporters: [debug] }
    profiles: { receivers: [ebpfprocess], exporters: [otlp_grpc] }
`, apiPort, otlpPort, sink.addr)
	c := startCollector(t, writeConfig(t, cfg))
	c.waitFor("Everything is ready", time.Minute)

	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", otlpPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pmetricotlp.NewGRPCClient(conn)
	var sawThreads atomic.Bool
	next, err := consumer.NewMetrics(func(ctx context.Context, md pmetric.Metrics) error {
		if hasMetric(md, "process.threads") {
			sawThreads.Store(true)
		}
		_, err := client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	f := hostmetricsreceiver.NewFactory()
	hmCfg := f.CreateDefaultConfig()
	err = confmap.NewFromStringMap(map[string]any{
		"collection_interval": "1s",
		"scrapers": map[string]any{"process": map[string]any{
			"include":                map[string]any{"names": []any{"cp-hmthreads"}, "match_type": "strict"},
			"mute_process_exe_error": true, "mute_process_io_error": true, "mute_process_user_error": true,
			"metrics": map[string]any{"process.threads": map[string]any{"enabled": true}},
		}},
	}).Unmarshal(hmCfg)
	if err != nil {
		t.Fatal(err)
	}
	hm, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(f.Type()), hmCfg, next)
	if err != nil {
		t.Fatal(err)
	}
	if err := hm.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := hm.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()

	task := waitTask(t, api, 60*time.Second, func(x apiTask) bool {
		return x.Policy == "hm-threads" && len(x.Processes) == 1 && x.Processes[0].PID == w.PID() && !x.Started.IsZero()
	})
	if len(task.Causes) == 0 || task.Causes[0].Monitor != "process_thread_count" || len(task.Causes[0].Values) < 2 || task.Causes[0].Values[0] < 4 {
		t.Fatalf("task causes %+v: want process_thread_count crossing with 4 threads", task.Causes)
	}
	if !sawThreads.Load() {
		t.Fatal("hostmetrics sent no process.threads")
	}
	t.Logf("task %s on pid %d from hostmetrics' process.threads: values %v", task.ID, w.PID(), task.Causes[0].Values)
}

func hasMetric(md pmetric.Metrics, name string) bool {
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		sms := md.ResourceMetrics().At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				if ms.At(k).Name() == name {
					return true
				}
			}
		}
	}
	return false
}
