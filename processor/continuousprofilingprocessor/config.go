package continuousprofilingprocessor // import "github.com/contprof/contprof/processor/continuousprofilingprocessor"

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
)

// Config of the continuousprofiling processor. Every field has a default, so
// `continuousprofiling: {}` is a valid configuration.
type Config struct {
	// PolicyExtension is the profilingpolicy extension to use; may be left
	// empty when exactly one is configured.
	PolicyExtension component.ID `mapstructure:"policy_extension"`
	// IdleTimeout drops the windows of a process that sent no data for this
	// long.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// MaxProcesses bounds how many processes have windows; data of further
	// processes passes through unevaluated until others go idle.
	MaxProcesses int `mapstructure:"max_processes"`
	// CompletionDelay: a second is complete once a later second's data has
	// arrived for the process, or once the wall clock is this far past its end.
	CompletionDelay time.Duration `mapstructure:"completion_delay"`
	// RefusedRetryInterval is how long after a refused request (one that
	// does not say until when the process is silenced) the same policy may
	// request again for the same process.
	RefusedRetryInterval time.Duration `mapstructure:"refused_retry_interval"`

	_ struct{}
}

var _ component.Config = (*Config)(nil)

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.IdleTimeout < time.Second {
		errs = append(errs, fmt.Errorf("idle_timeout: %v is too short, use at least 1s", c.IdleTimeout))
	}
	if c.MaxProcesses < 1 {
		errs = append(errs, fmt.Errorf("max_processes: %d, must be at least 1", c.MaxProcesses))
	}
	if c.CompletionDelay < 0 || c.CompletionDelay > time.Minute {
		errs = append(errs, fmt.Errorf("completion_delay: %v, must be between 0s and 1m", c.CompletionDelay))
	}
	if c.RefusedRetryInterval < time.Second {
		errs = append(errs, fmt.Errorf("refused_retry_interval: %v is too short, use at least 1s", c.RefusedRetryInterval))
	}
	return errors.Join(errs...)
}
