package profilingpolicyextension

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/contprof/contprof/extension/profilingpolicyextension/internal/metadata"
	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/dispatch"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/output/profiles"
)

// statusHost is a Collector host that records status events and offers
// extensions (for auth).
type statusHost struct {
	mu     sync.Mutex
	events []*componentstatus.Event
	exts   map[component.ID]component.Component
}

func (h *statusHost) GetExtensions() map[component.ID]component.Component { return h.exts }

func (h *statusHost) Report(ev *componentstatus.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, ev)
}

func (h *statusHost) last() *componentstatus.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.events) == 0 {
		return nil
	}
	return h.events[len(h.events)-1]
}

func (h *statusHost) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.events)
}

func testConfig() *Config {
	cfg := createDefaultConfig().(*Config)
	api := confighttp.NewDefaultServerConfig()
	api.NetAddr.Endpoint = "localhost:0"
	cfg.API = configoptional.Some(api)
	return cfg
}

func startExtension(t *testing.T, cfg *Config, host component.Host) *profilingPolicy {
	t.Helper()
	if host == nil {
		host = &statusHost{}
	}
	ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(metadata.Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ext.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return ext.(*profilingPolicy)
}

func (e *profilingPolicy) baseURL() string { return "http://" + e.addr.String() }

// eventually polls cond for up to 2 seconds (the file source's contract).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 2s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// executor stands in for the ebpfprocess receiver: it records tasks and
// hands over one profile per task.
type executor struct {
	mu      sync.Mutex
	started []control.Task
	sinks   map[string]dispatch.Sink
	ctxs    map[string]context.Context
}

func newExecutor() *executor {
	return &executor{sinks: map[string]dispatch.Sink{}, ctxs: map[string]context.Context{}}
}

func (x *executor) Targets() []policy.Target { return policy.Targets }

func (x *executor) StartTask(ctx context.Context, t control.Task, s dispatch.Sink) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.started = append(x.started, t)
	x.sinks[t.ID] = s
	x.ctxs[t.ID] = ctx
	s.Started()
	return nil
}

func (x *executor) sink(id string) dispatch.Sink {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.sinks[id]
}

type staticView []control.ProcessStatus

func (v staticView) Processes() []control.ProcessStatus { return v }

func testProfile(samples int64) *profiles.Profile {
	m := &profiles.Mapping{Start: 0x400000, Limit: 0x500000, File: "/bin/app"}
	return &profiles.Profile{
		Kind: profiles.OnCPU(99),
		Samples: []profiles.Sample{{Value: samples, Frames: []profiles.Frame{
			{Function: "main.work", Address: 0x401000, Mapping: m, Type: profiles.FrameNative},
		}}},
	}
}

type confighttpServerConfig = confighttp.ServerConfig

func extensionSettings() extension.Settings { return extensiontest.NewNopSettings(metadata.Type) }

func authConfig(name string) configoptional.Optional[confighttp.AuthConfig] {
	return configoptional.Some(confighttp.AuthConfig{Config: configauth.Config{AuthenticatorID: component.MustNewID(name)}})
}

// tokenAuth is a server authenticator standing in for a Collector auth
// extension (bearertokenauth, basicauth, oidc).
type tokenAuth struct{ token string }

func (a *tokenAuth) Start(context.Context, component.Host) error { return nil }
func (a *tokenAuth) Shutdown(context.Context) error              { return nil }
func (a *tokenAuth) Authenticate(ctx context.Context, sources map[string][]string) (context.Context, error) {
	for _, v := range sources["Authorization"] {
		if v == "Bearer "+a.token {
			return ctx, nil
		}
	}
	return ctx, errors.New("missing or wrong bearer token")
}
