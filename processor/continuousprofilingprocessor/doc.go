//go:generate mdatagen metadata.yaml

// Package continuousprofilingprocessor is the decision engine of contprof: a
// metrics processor that passes every batch through unchanged, keeps
// per-process per-second windows of the semantic-convention metrics that
// profiling policies watch, and asks the profilingpolicy extension for a
// profiling task when a policy is met.
package continuousprofilingprocessor // import "github.com/contprof/contprof/processor/continuousprofilingprocessor"
