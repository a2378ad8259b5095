// Package offcpu holds the off-CPU profiler BPF program (offcpu.c) and its
// bpf2go-generated loader. Regenerate with `go generate ./bpf/...` (needs
// clang); the generated files are committed so `go build` needs no clang.
package offcpu

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target amd64,arm64 -tags linux -type block_key -type block_value -type start -type rate offcpu offcpu.c -- -I../headers -O2 -g -Wall -Werror
