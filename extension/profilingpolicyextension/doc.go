//go:generate mdatagen metadata.yaml

// Package profilingpolicyextension is the profilingpolicy extension: the
// control plane of contprof (policies, task control, history, HTTP API).
package profilingpolicyextension // import "github.com/contprof/contprof/extension/profilingpolicyextension"
