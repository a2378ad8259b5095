// Package oncpu holds the on-CPU sampler BPF program (oncpu.c) and its
// bpf2go-generated loader. Regenerate with `go generate ./bpf/...` (needs
// clang); the generated files are committed so `go build` needs no clang.
package oncpu

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target amd64,arm64 -tags linux -type sample_key oncpu oncpu.c -- -I../headers -O2 -g -Wall -Werror
