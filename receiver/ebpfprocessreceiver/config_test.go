package ebpfprocessreceiver

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/contprof/contprof/receiver/ebpfprocessreceiver/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	custom := createDefaultConfig().(*Config)
	custom.CollectionInterval = 2 * time.Second
	custom.Include = ProcessFilter{Executables: []string{"java", "node"}, CommandLineRegex: "-Dapp=checkout"}
	custom.Exclude = ProcessFilter{PIDs: []int{1}}
	custom.Scope = ScopePolicyTargets
	custom.ProcessSource = ProcessSourceProc
	custom.PolicyExtension = component.MustNewIDWithName("profilingpolicy", "prod")
	custom.Profiling = ProfilingConfig{OnCPU: OnCPUConfig{Frequency: 49}, OffCPU: OffCPUConfig{MinBlock: time.Millisecond}, ReportInterval: 30 * time.Second,
		Lookback: LookbackConfig{Frequency: 29, MaxMemory: 1 << 20}}
	custom.HTTP = HTTPConfig{Monitor: HTTPMonitorNever, MaxPathsPerProcess: 20}
	// Through Unmarshal, as the collector sets it (it records that the
	// user chose).
	if err := confmap.NewFromStringMap(map[string]any{"enabled": false}).Unmarshal(&custom.ResourceAttributes.ProcessCommandLine); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		id      component.ID
		want    *Config
		wantErr []string // substrings of the validation error
	}{
		{id: component.NewID(metadata.Type), want: createDefaultConfig().(*Config)},
		{id: component.NewIDWithName(metadata.Type, "custom"), want: custom},
		{
			id: component.NewIDWithName(metadata.Type, "bad_values"),
			wantErr: []string{
				"collection_interval: 10ms is out of range",
				`scope: "everything" is not one of`,
				`process_source: "kernel" is not one of "auto", "proc", "bpf"`,
				`include.executable_regex: "(" is not a valid RE2 regex`,
				"exclude.pids[0]: 0 is not a valid PID",
				"profiling.on_cpu.frequency: 5000 is out of range",
				"profiling.off_cpu.min_block: 2s is out of range",
				"profiling.report_interval: 100ms is out of range",
				"profiling.lookback.frequency: 0 Hz is out of range [1, 1000]",
				"profiling.lookback.max_memory: 1024 bytes is out of range [64 KiB, 4 GiB]",
				`http.monitor: "sometimes" is not one of`,
				"http.max_paths_per_process: 0 is out of range",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.id.String(), func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig()
			sub, err := cm.Sub(tc.id.String())
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Unmarshal(cfg); err != nil {
				t.Fatal(err)
			}
			err = confmap.Validate(cfg)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("no validation error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg, tc.want) {
				t.Fatalf("config %+v\nwant %+v", cfg, tc.want)
			}
		})
	}
}

// An unknown key is an error naming it (strict decoding).
func TestLoadConfigUnknownKey(t *testing.T) {
	cfg := NewFactory().CreateDefaultConfig()
	err := confmap.NewFromStringMap(map[string]any{"colection_interval": "1s"}).Unmarshal(cfg)
	if err == nil || !strings.Contains(err.Error(), "colection_interval") {
		t.Fatalf("err %v, want one naming colection_interval", err)
	}
}
