// Package tcpevents holds the TCP lifecycle and retransmit BPF program
// (tcpevents.c) and its bpf2go-generated loader. Regenerate with
// `go generate ./bpf/...` (needs clang); the generated files are committed so
// `go build` needs no clang.
package tcpevents

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target amd64,arm64 -tags linux -type event -type tuple -type listen_key -type flow tcpevents tcpevents.c -- -I../headers -O2 -g -Wall -Werror
