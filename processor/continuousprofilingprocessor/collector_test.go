package continuousprofilingprocessor

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/contprof/contprof/internal/control/policy"
)

// TestInCollectorPipeline runs a real collector in-process: OTLP metrics sent
// over gRPC to the otlp receiver flow through the processor, which finds the
// policy extension in the service's host and requests a task; the batch
// reaches the exporter unchanged. The extension is a stand-in (the real one
// is another component, tested end to end elsewhere).
func TestInCollectorPipeline(t *testing.T) {
	ctrl := newFakeController(policy.Policy{
		Name: "checkout-cpu", Target: policy.TargetOnCPU,
		Selector: policy.Selector{"service.name": {Regex: "^checkout$"}},
		Items:    []policy.Item{{Monitor: policy.MonitorProcessCPU, Threshold: 80, Period: 10, Count: 3}},
	})
	sink := new(consumertest.MetricsSink)
	endpoint := freeAddr(t)

	extType := component.MustNewType("profilingpolicy")
	extFactory := extension.NewFactory(extType,
		func() component.Config { return &struct{}{} },
		func(context.Context, extension.Settings, component.Config) (extension.Extension, error) {
			return ctrl, nil
		},
		component.StabilityLevelDevelopment)
	sinkType := component.MustNewType("sink")
	expFactory := exporter.NewFactory(sinkType,
		func() component.Config { return &struct{}{} },
		exporter.WithMetrics(func(context.Context, exporter.Settings, component.Config) (exporter.Metrics, error) {
			return sinkExporter{MetricsSink: sink}, nil
		}, component.StabilityLevelDevelopment))

	factories := func() (otelcol.Factories, error) {
		var f otelcol.Factories
		var err error
		if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](otlpreceiver.NewFactory()); err != nil {
			return f, err
		}
		if f.Processors, err = otelcol.MakeFactoryMap[processor.Factory](NewFactory()); err != nil {
			return f, err
		}
		if f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](expFactory); err != nil {
			return f, err
		}
		if f.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](extFactory); err != nil {
			return f, err
		}
		f.Telemetry = otelconftelemetry.NewFactory()
		return f, nil
	}
	cfg := fmt.Sprintf(`yaml:
extensions:
  profilingpolicy: {}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
processors:
  continuousprofiling: {}
exporters:
  sink: {}
service:
  extensions: [profilingpolicy]
  telemetry:
    logs: { level: warn }
    metrics: { level: none }
  pipelines:
    metrics:
      receivers: [otlp]
      processors: [continuousprofiling]
      exporters: [sink]
`, endpoint)
	col, err := otelcol.NewCollector(otelcol.CollectorSettings{
		Factories:               factories,
		BuildInfo:               component.NewDefaultBuildInfo(),
		DisableGracefulShutdown: true,
		SkipSettingGRPCLogger:   true,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			URIs:              []string{cfg},
			ProviderFactories: []confmap.ProviderFactory{yamlprovider.NewFactory()},
		}},
	})
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
	waitFor(t, "collector running", func() bool { return col.GetState() == otelcol.StateRunning })

	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pmetricotlp.NewGRPCClient(conn)

	// Four seconds of 90 % CPU (sent as user + system) for checkout, and of
	// 99 % for cart, which the selector does not match.
	start := time.Now().Add(-10 * time.Second).Unix()
	sent := 0
	for i := int64(0); i < 4; i++ {
		md := pmetric.NewMetrics()
		cpuPoints(checkout.resource(md), start+i, map[string]float64{"user": 0.6, "system": 0.3})
		cart := checkout
		cart.pid, cart.attrs = 77, map[string]any{"service.name": "cart"}
		cpuPoints(cart.resource(md), start+i, map[string]float64{"user": 0.99})
		sent += md.DataPointCount()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md))
		cancel()
		if err != nil {
			t.Fatalf("export: %v", err)
		}
	}

	waitFor(t, "task request", func() bool { return len(ctrl.requests()) > 0 })
	reqs := ctrl.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	p := r.Processes[0]
	if r.Policy != "checkout-cpu" || len(r.Processes) != 1 || p.PID != 4242 || p.Host != "h1" ||
		p.Attributes["service.name"] != "checkout" || p.Attributes["process.creation.time"] != checkout.created {
		t.Fatalf("request %+v", r)
	}
	if c := r.Causes[0]; !approx(c.Values, []float64{90, 90, 90}) || !c.At.Equal(time.Unix(start+3, 0)) {
		t.Fatalf("cause %+v, want values 90,90,90 at the end of the third second", c)
	}
	waitFor(t, "all points exported", func() bool { return sink.DataPointCount() == sent })
	if n := ctrl.viewCount(); n != 1 {
		t.Fatalf("%d process views registered in the collector, want 1", n)
	}
}

type sinkExporter struct {
	component.StartFunc
	component.ShutdownFunc
	*consumertest.MetricsSink
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

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
