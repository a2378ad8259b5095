// Package netprof is the network profiling task (target `network`): for
// the processes of one service instance it reports, every interval, what
// their TCP connections did, per flow and peer, as OTLP metrics, and
// sampled slow or failed HTTP exchanges as OTLP logs.
//
// Sources: the eBPF programs of bpf/tcpevents (connection opens and closes
// with final counters from sock/inet_sock_set_state, retransmitted
// segments from tcp/tcp_retransmit_skb), sock_diag (tcp_info of live
// connections, in each process's network namespace), /proc/PID/fd (which
// socket belongs to which process, here and at the other end of a local
// connection), and HTTP exchanges handed over with ObserveHTTP.
//
// See README.md for the metrics and attributes.
package netprof
