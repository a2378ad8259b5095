package continuousprofilingprocessor

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/contprof/contprof/processor/continuousprofilingprocessor/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id      component.ID
		want    *Config
		wantErr []string // substrings of the validation error
	}{
		{id: component.NewID(metadata.Type), want: createDefaultConfig().(*Config)},
		{
			id: component.NewIDWithName(metadata.Type, "custom"),
			want: &Config{
				PolicyExtension:      component.MustNewIDWithName("profilingpolicy", "prod"),
				IdleTimeout:          5 * time.Minute,
				MaxProcesses:         500,
				CompletionDelay:      3 * time.Second,
				RefusedRetryInterval: time.Minute,
			},
		},
		{id: component.NewIDWithName(metadata.Type, "bad_max_processes"), wantErr: []string{"max_processes: 0"}},
		{
			id: component.NewIDWithName(metadata.Type, "bad_durations"),
			wantErr: []string{
				"idle_timeout: 100ms", "completion_delay: -1s", "refused_retry_interval: 0s",
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
			if *cfg.(*Config) != *tc.want {
				t.Fatalf("config %+v, want %+v", cfg, tc.want)
			}
		})
	}
}
