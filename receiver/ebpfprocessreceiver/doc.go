//go:generate /bin/sh -c "cd . && $(go env GOPATH)/bin/mdatagen metadata.yaml"

// Package ebpfprocessreceiver is the data plane of contprof: it watches this
// host's processes through /proc and eBPF, emits per-second process and HTTP
// metrics, and runs the profiling tasks that the profilingpolicy extension
// dispatches, emitting OTLP profiles.
package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"
