// Package httpmon holds the HTTP/1.x exchange monitor BPF program
// (httpmon.c) and its bpf2go-generated loader. Regenerate with
// `go generate ./bpf/...` (needs clang); the generated files are committed so
// `go build` needs no clang.
package httpmon

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target amd64,arm64 -tags linux -type http_event -type agg_key -type agg_key_short -type agg_value httpmon httpmon.c -- -I../headers -O2 -g -Wall -Werror
