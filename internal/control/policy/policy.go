// Package policy is the policy model shared by the extension (which loads and
// validates policies), the processor (which evaluates them) and the receiver
// (which scopes discovery and loads eBPF programs by what policies need).
package policy

import (
	"regexp"
	"time"
)

// Target is what a triggered task profiles.
type Target string

const (
	TargetOnCPU   Target = "on_cpu"
	TargetOffCPU  Target = "off_cpu"
	TargetNetwork Target = "network"
)

// Monitor is a per-second signal a policy item watches.
type Monitor string

const (
	MonitorProcessCPU          Monitor = "process_cpu"
	MonitorProcessThreadCount  Monitor = "process_thread_count"
	MonitorSystemLoad          Monitor = "system_load"
	MonitorHTTPErrorRate       Monitor = "http_error_rate"
	MonitorHTTPAvgResponseTime Monitor = "http_avg_response_time"
)

// IsHTTP reports whether the monitor reads HTTP server metrics (and so may
// carry a URI filter and needs the HTTP eBPF monitor loaded).
func (m Monitor) IsHTTP() bool {
	return m == MonitorHTTPErrorRate || m == MonitorHTTPAvgResponseTime
}

const (
	DefaultDuration = 10 * time.Minute
	DefaultSilence  = 20 * time.Minute
	// DefaultLookback is the lookback of an on_cpu policy that sets none;
	// off_cpu policies default to none (an always-on sched_switch hook
	// costs every context switch on the host), network has none.
	DefaultLookback = 10 * time.Second
	// MaxLookback bounds how far before a trigger the receiver keeps
	// samples.
	MaxLookback = time.Minute
)

// Policy is selector + target + items; items are OR-ed.
type Policy struct {
	Name     string        `json:"name" yaml:"name" mapstructure:"name"`
	Selector Selector      `json:"selector,omitempty" yaml:"selector,omitempty" mapstructure:"selector"`
	Target   Target        `json:"target" yaml:"target" mapstructure:"target"`
	Duration time.Duration `json:"duration,omitempty" yaml:"duration,omitempty" mapstructure:"duration"`
	Silence  time.Duration `json:"silence,omitempty" yaml:"silence,omitempty" mapstructure:"silence"`
	Items    []Item        `json:"items" yaml:"items" mapstructure:"items"`
	// Lookback is how long before the trigger the receiver keeps low-rate
	// samples of the processes the policy selects, to put them into the
	// task's first report; 0 is off. Validate sets the default of the
	// target unless LookbackSet.
	Lookback time.Duration `json:"lookback,omitempty" yaml:"lookback,omitempty" mapstructure:"lookback"`
	// LookbackSet says Lookback was given (so an explicit 0 stays off).
	LookbackSet bool `json:"-" yaml:"-" mapstructure:"-"`
}

// Item is one trigger condition: at least Count of the most recent Period
// seconds had a value >= Threshold.
type Item struct {
	Monitor   Monitor  `json:"monitor" yaml:"monitor" mapstructure:"monitor"`
	Threshold float64  `json:"threshold" yaml:"threshold" mapstructure:"threshold"`
	Period    int      `json:"period" yaml:"period" mapstructure:"period"`
	Count     int      `json:"count" yaml:"count" mapstructure:"count"`
	URIRegex  string   `json:"uri_regex,omitempty" yaml:"uri_regex,omitempty" mapstructure:"uri_regex"`
	URIList   []string `json:"uri_list,omitempty" yaml:"uri_list,omitempty" mapstructure:"uri_list"`

	// uriRe is compiled by Validate.
	uriRe *regexp.Regexp
}

// Selector holds resource-attribute conditions that must all match.
type Selector map[string]Matcher

// Matcher matches one attribute value: exactly, or by an RE2 regex.
type Matcher struct {
	Exact string `json:"exact,omitempty" yaml:"exact,omitempty"`
	Regex string `json:"regex,omitempty" yaml:"regex,omitempty"`

	re *regexp.Regexp
}

// Set is a validated, immutable set of policies with a version.
// Subscribers must not modify it.
type Set struct {
	Policies []Policy
	// Version is a content hash of the set.
	Version string
	// LoadedAt is when this set became active.
	LoadedAt time.Time
}
