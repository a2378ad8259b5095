package profilingpolicyextension // import "github.com/contprof/contprof/extension/profilingpolicyextension"

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"

	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/control/policysource"
	"github.com/contprof/contprof/internal/control/taskcontrol"
)

// Config of the profilingpolicy extension.
type Config struct {
	// Policies are inline policies, in the same schema as policy files.
	// They are kept as the raw configuration tree and decoded by the one
	// policy decoder, so inline, file and URL policies read alike.
	Policies []any `mapstructure:"policies"`
	// PolicyFile is a YAML or JSON policy file, watched for changes.
	PolicyFile string `mapstructure:"policy_file"`
	// PolicyURL is polled for a YAML or JSON policy document.
	PolicyURL configoptional.Optional[policysource.HTTPConfig] `mapstructure:"policy_url"`
	// Limits bound the tasks and what is kept of them.
	Limits LimitsConfig `mapstructure:"limits"`
	// Storage names a storage extension (file_storage) that keeps the task
	// history, causes and stored profiles across restarts; without it the
	// history is in memory only.
	Storage *component.ID `mapstructure:"storage"`
	// API is the HTTP API server; `api: {enabled: false}` turns it off.
	API configoptional.Optional[confighttp.ServerConfig] `mapstructure:"api"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// LimitsConfig bounds tasks, history and stored profiles.
type LimitsConfig struct {
	// MaxConcurrentTasks is the number of tasks pending or running at once.
	MaxConcurrentTasks int `mapstructure:"max_concurrent_tasks"`
	// HistoryMaxTasks bounds the task history (which also ends after 48h).
	HistoryMaxTasks int `mapstructure:"history_max_tasks"`
	// ProfileStoreBytes bounds the memory of the stored task profiles
	// (gzip pprof); the oldest task's profile is dropped first.
	ProfileStoreBytes int64 `mapstructure:"profile_store_bytes"`
	// MaxAPIConnections bounds the API's open connections; more wait to
	// be accepted.
	MaxAPIConnections int `mapstructure:"max_api_connections"`

	// prevent unkeyed literal initialization
	_ struct{}
}

const (
	defaultEndpoint = "localhost:7733"
	// defaultMaxAPIConnections bounds the API's memory under a flood of
	// clients (1,000 concurrent connections took 177 MB unbounded).
	defaultMaxAPIConnections = 64
	// maxBodyBytes bounds API request bodies.
	maxBodyBytes = 1 << 20
)

var _ component.Config = (*Config)(nil)

// Validate names the setting and the value that is wrong.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Policies) > 0 {
		if _, err := policy.Decode(c.Policies, "policies"); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Limits.MaxConcurrentTasks < 1 {
		errs = append(errs, fmt.Errorf("limits.max_concurrent_tasks: %d must be at least 1", c.Limits.MaxConcurrentTasks))
	}
	if c.Limits.HistoryMaxTasks < 1 {
		errs = append(errs, fmt.Errorf("limits.history_max_tasks: %d must be at least 1", c.Limits.HistoryMaxTasks))
	}
	if c.Limits.MaxAPIConnections < 1 {
		errs = append(errs, fmt.Errorf("limits.max_api_connections: %d must be at least 1", c.Limits.MaxAPIConnections))
	}
	if c.Limits.ProfileStoreBytes < 0 {
		errs = append(errs, fmt.Errorf("limits.profile_store_bytes: %d must not be negative (0 keeps no profiles)", c.Limits.ProfileStoreBytes))
	}
	if api := c.API.Get(); api != nil && api.NetAddr.Endpoint == "" {
		errs = append(errs, errors.New("api.endpoint: must not be empty (set api: {enabled: false} to turn the API off)"))
	}
	return errors.Join(errs...)
}

func createDefaultConfig() component.Config {
	server := confighttp.NewDefaultServerConfig()
	server.NetAddr.Endpoint = defaultEndpoint
	server.MaxRequestBodySize = maxBodyBytes
	return &Config{
		PolicyURL: configoptional.Default(policysource.NewDefaultHTTPConfig()),
		Limits: LimitsConfig{
			MaxConcurrentTasks: taskcontrol.DefaultMaxConcurrentTasks,
			HistoryMaxTasks:    taskcontrol.DefaultHistoryMaxTasks,
			ProfileStoreBytes:  taskcontrol.DefaultProfileStoreBytes,
			MaxAPIConnections:  defaultMaxAPIConnections,
		},
		API: configoptional.Some(server),
	}
}
