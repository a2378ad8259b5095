package profilingpolicyextension

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/contprof/contprof/extension/profilingpolicyextension/internal/metadata"
	"github.com/contprof/contprof/internal/control/policy"
)

func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
	if err != nil {
		t.Fatal(err)
	}
	cfg := createDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return cfg, err
	}
	return cfg, confmap.Validate(cfg)
}

func TestConfigDefault(t *testing.T) {
	cfg, err := loadConfig(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.MaxConcurrentTasks != 4 || cfg.Limits.HistoryMaxTasks != 1000 || cfg.Limits.ProfileStoreBytes != 64<<20 {
		t.Fatalf("limits %+v", cfg.Limits)
	}
	api := cfg.API.Get()
	if api == nil || api.NetAddr.Endpoint != "localhost:7733" || api.MaxRequestBodySize != 1<<20 {
		t.Fatalf("api %+v", api)
	}
	if cfg.PolicyURL.HasValue() || cfg.PolicyFile != "" || len(cfg.Policies) != 0 {
		t.Fatal("sources configured by default")
	}
}

func TestConfigFull(t *testing.T) {
	cfg, err := loadConfig(t, "full")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := policy.Decode(cfg.Policies, "policies")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Duration != 2*time.Minute || ps[0].Selector["k8s.pod.name"].Regex != "^checkout-" || ps[1].Silence != 30*time.Minute || ps[1].Items[0].URIRegex != "^/api/" {
		t.Fatalf("policies %+v", ps)
	}
	u := cfg.PolicyURL.Get()
	if u == nil || u.Endpoint != "https://policies.example/v1/policies" || u.PollInterval != 30*time.Second || u.Timeout != 3*time.Second {
		t.Fatalf("policy_url %+v", u)
	}
	if cfg.PolicyFile != "/etc/contprof/policies.yaml" || cfg.Limits.MaxConcurrentTasks != 2 || cfg.Limits.HistoryMaxTasks != 500 || cfg.Limits.ProfileStoreBytes != 16<<20 {
		t.Fatalf("cfg %+v", cfg)
	}
	api := cfg.API.Get()
	if api.NetAddr.Endpoint != "0.0.0.0:7733" || !api.Auth.HasValue() || api.Auth.Get().Config.AuthenticatorID.String() != "basicauth" {
		t.Fatalf("api %+v", api)
	}
}

func TestConfigPolicyURLDefaults(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	if err := confmap.NewFromStringMap(map[string]any{"policy_url": map[string]any{"endpoint": "http://localhost:1/p"}}).Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	u := cfg.PolicyURL.Get()
	if u == nil || u.PollInterval != 10*time.Second || u.Timeout != 5*time.Second {
		t.Fatalf("policy_url %+v", u)
	}
}

func TestConfigNoAPI(t *testing.T) {
	cfg, err := loadConfig(t, "noapi")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.API.HasValue() {
		t.Fatal("api still enabled")
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		want []string
	}{
		{"badpolicy", []string{`policies: policy "checkout-cpu": items[0].count: 12 is greater than period 10`}},
		{"unknownkey", []string{`policies: policy "checkout-cpu": unknown field "treshold"`}},
		{"badlimits", []string{
			"limits.max_concurrent_tasks: 0 must be at least 1",
			"limits.history_max_tasks: -1 must be at least 1",
			"limits.profile_store_bytes: -5 must not be negative",
		}},
		{"badurl", []string{`policy_url: endpoint: "ftp://policies.example" is not an http(s) URL`}},
		{"emptyendpoint", []string{"api.endpoint: must not be empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(t, tt.name)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}
