// Package procstat holds the BPF task iterator that samples every process
// in one pass (procstat.c) and its bpf2go-generated loader. Regenerate with
// `go generate ./bpf/...` (needs clang); the generated files are committed so
// `go build` needs no clang.
package procstat

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target amd64,arm64 -tags linux -type record procstat procstat.c -- -I../headers -O2 -g -Wall -Werror
