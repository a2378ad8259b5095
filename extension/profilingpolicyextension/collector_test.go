package profilingpolicyextension

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
)

func collectorSettings(cfg string) otelcol.CollectorSettings {
	factories := func() (otelcol.Factories, error) {
		var f otelcol.Factories
		var err error
		if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](receivertest.NewNopFactory()); err != nil {
			return f, err
		}
		if f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](exportertest.NewNopFactory()); err != nil {
			return f, err
		}
		if f.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](NewFactory()); err != nil {
			return f, err
		}
		f.Telemetry = otelconftelemetry.NewFactory()
		return f, nil
	}
	return otelcol.CollectorSettings{
		Factories:               factories,
		BuildInfo:               component.NewDefaultBuildInfo(),
		DisableGracefulShutdown: true,
		SkipSettingGRPCLogger:   true,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			URIs:              []string{"yaml:" + cfg},
			ProviderFactories: []confmap.ProviderFactory{yamlprovider.NewFactory()},
		}},
	}
}

const collectorConfig = `
extensions:
  profilingpolicy:
    policies:
      - name: checkout-cpu
        selector: { service.name: checkout, k8s.pod.name: { regex: "^checkout-" } }
        target: on_cpu
        duration: 2m
        items:
          - { monitor: process_cpu, threshold: 80, period: 10, count: 5 }
%s
    limits: { max_concurrent_tasks: 2 }
    api: { endpoint: %s }
receivers:
  nop: {}
exporters:
  nop: {}
service:
  extensions: [profilingpolicy]
  telemetry:
    logs: { level: error }
    metrics: { level: none }
  pipelines:
    metrics: { receivers: [nop], exporters: [nop] }
`

// TestInCollector runs the extension in a real collector from YAML: inline
// policies go through the Collector's own config decoding, the file source
// is live, and the API answers.
func TestInCollector(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policies.yaml")
	if err := os.WriteFile(path, []byte(fileDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	col, err := otelcol.NewCollector(collectorSettings(fmt.Sprintf(collectorConfig, "    policy_file: "+path, addr)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- col.Run(context.Background()) }()
	defer func() {
		col.Shutdown()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for col.GetState() != otelcol.StateRunning {
		if time.Now().After(deadline) {
			t.Fatal("collector did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}

	var pv policiesView
	getJSON(t, "http://"+addr+"/api/v1/policies", http.StatusOK, &pv)
	if len(pv.Policies) != 2 || pv.Policies[0].Name != "checkout-cpu" || pv.Policies[0].Duration != "2m0s" ||
		pv.Policies[0].Selector["k8s.pod.name"].Regex != "^checkout-" || pv.Policies[0].Items[0].Threshold != 80 ||
		pv.Policies[1].Name != "file-cpu" || pv.Policies[1].Source != "policy_file" {
		t.Fatalf("policies %+v", pv.Policies)
	}

	// The file changes while the collector runs.
	if err := os.WriteFile(path, []byte(strings.Replace(fileDoc, "file-cpu", "file-cpu-2", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "file change live in the collector", func() bool {
		var v policiesView
		getJSON(t, "http://"+addr+"/api/v1/policies", http.StatusOK, &v)
		return len(v.Policies) == 2 && v.Policies[1].Name == "file-cpu-2" && v.Version != pv.Version
	})
}

// TestInCollectorBadPolicy: the collector refuses to start and says which
// policy, field and value are wrong.
func TestInCollectorBadPolicy(t *testing.T) {
	cfg := strings.Replace(fmt.Sprintf(collectorConfig, "", freeAddr(t)), "count: 5", "count: 50", 1)
	col, err := otelcol.NewCollector(collectorSettings(cfg))
	if err != nil {
		t.Fatal(err)
	}
	err = col.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), `policy "checkout-cpu": items[0].count: 50 is greater than period 10`) {
		t.Fatalf("err = %v", err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
