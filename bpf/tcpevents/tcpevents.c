//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// TCP connection lifecycle and retransmits for network profiling. Each
// program comes in two flavours on the same kernel events: a classic
// tracepoint and a BTF raw tracepoint (tp_btf, which needs no tracefs).
//
// sock/inet_sock_set_state tracks the TCP sockets of target processes from
// the moment they are established to TCP_CLOSE and sends an event for each
// open and close; the close event carries the socket's final counters, which
// sock_diag can no longer show. Many transitions run in softirq context,
// where the current task is not the socket's owner, so a socket is adopted
// only where its owner is known:
//   - connect(): CLOSE -> SYN_SENT runs in the caller's context;
//   - a passive open: SYN_RECV -> ESTABLISHED on a listening port that user
//     space registered for a target process (listen_ports);
//   - close()/shutdown() of a connection that predates tracking:
//     -> FIN_WAIT1 / LAST_ACK / CLOSE in the owner's context.
// Once adopted, the socket is followed by its address (flows), whatever the
// context.
//
// tcp/tcp_retransmit_skb runs mostly in softirq (timers, incoming SACKs), so
// it is not filtered by process: it counts retransmitted segments per
// connection 4-tuple in an LRU map that user space reads for the connections it has
// attributed to target processes through sock_diag and /proc/PID/fd.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "contprof.h"

#define AF_INET 2
#define AF_INET6 10

enum event_kind {
	EVENT_OPEN = 1,
	EVENT_CLOSE = 2,
};

enum role {
	ROLE_UNKNOWN = 0, // adopted at close: opened before tracking began
	ROLE_CLIENT = 1,
	ROLE_SERVER = 2,
};

enum stat_index {
	STAT_OPENS = 0,      // open events sent
	STAT_CLOSES,         // close events sent
	STAT_EVENTS_LOST,    // ring buffer full
	STAT_FLOWS_FULL,     // flows map full: connection not tracked
	STAT_RETRANSMITS,    // retransmit events (all sockets, failed ones too)
	STAT_MAX,
};

// A connection as seen from its local socket, in its network namespace.
// Addresses are IPv6 or IPv4-mapped IPv6, in network byte order; ports in
// host byte order (as the tracepoints give them).
struct tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 netns;
};

struct flow {
	__u64 open_ns; // CLOCK_MONOTONIC at ESTABLISHED; 0 when unknown
	__u64 ino;     // socket inode, once seen in process context
	__u32 tgid;    // owner; 0 when unknown
	__u16 family;
	__u8 role;
	__u8 established;
};

struct event {
	struct tuple t;
	__u64 ts_ns;
	__u64 open_ns;
	__u64 ino;
	__u64 bytes_acked;
	__u64 bytes_received;
	__u64 retransmits; // segments, from the retrans map, at close
	__u32 srtt_us;     // smoothed RTT in microseconds
	__u32 total_retrans;
	__u32 tgid;
	__u16 family;
	__u8 kind;
	__u8 role;
};

struct listen_key {
	__u32 netns;
	__u16 port;
	__u16 pad;
};

// tgids, in the pid namespace of the loader.
PID_FILTER_HASH(1024);
STATS(STAT_MAX);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct listen_key);
	__type(value, __u32); // owner tgid
} listen_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); // struct sock address
	__type(value, struct flow);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tuple);
	__type(value, __u64);
} retrans SEC(".maps");

EVENT_RING(1 << 20);

// Emits BTF for struct event, which user space decodes (ring buffer records
// carry no type).
const struct event *unused_event __attribute__((unused));

static __always_inline __u32 sock_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

// The inode number of the socket's file, or 0 once the socket is orphaned
// (closed by its owner) or before accept() attached it to a file.
static __always_inline __u64 sock_ino(const struct sock *sk)
{
	struct socket *so = BPF_CORE_READ(sk, sk_socket);
	if (!so)
		return 0;
	// struct socket is the first member of struct socket_alloc.
	struct socket_alloc *sa = (struct socket_alloc *)so;
	return BPF_CORE_READ(sa, vfs_inode.i_ino);
}

static __always_inline void send_event(struct tuple *t, const struct sock *sk,
				       struct flow *f, __u8 kind, __u64 now)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(STAT_EVENTS_LOST);
		return;
	}
	e->t = *t;
	e->ts_ns = now;
	e->open_ns = f->open_ns;
	e->ino = f->ino;
	e->tgid = f->tgid;
	e->family = f->family;
	e->kind = kind;
	e->role = f->role;
	e->retransmits = 0;
	e->bytes_acked = 0;
	e->bytes_received = 0;
	e->srtt_us = 0;
	e->total_retrans = 0;
	if (kind == EVENT_CLOSE) {
		const struct tcp_sock *tp = (const struct tcp_sock *)sk;
		e->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
		e->bytes_received = BPF_CORE_READ(tp, bytes_received);
		e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
		e->total_retrans = BPF_CORE_READ(tp, total_retrans);
		__u64 *n = bpf_map_lookup_elem(&retrans, t);
		if (n) {
			e->retransmits = *n;
			bpf_map_delete_elem(&retrans, t);
		}
		stat_inc(STAT_CLOSES);
	} else {
		stat_inc(STAT_OPENS);
	}
	ring_submit(e);
}

static __always_inline void fill_tuple(struct tuple *t, const __u8 *saddr6,
				       const __u8 *daddr6, __u16 sport, __u16 dport,
				       const struct sock *sk)
{
	// Through a helper: the verifier refuses loads from a ctx pointer
	// with a variable-looking offset, which is what the copies compile to.
	bpf_probe_read_kernel(t->saddr, sizeof(t->saddr), saddr6);
	bpf_probe_read_kernel(t->daddr, sizeof(t->daddr), daddr6);
	t->sport = sport;
	t->dport = dport;
	t->netns = sock_netns(sk);
}

// tuple_of_sock fills t from the socket itself, as the tracepoints do
// (TP_STORE_ADDRS): IPv4 addresses as IPv4-mapped IPv6.
static __always_inline void tuple_of_sock(struct tuple *t, const struct sock *sk, __u16 family)
{
	if (family == AF_INET) {
		__u32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memset(t->saddr, 0, 10);
		__builtin_memset(t->daddr, 0, 10);
		t->saddr[10] = t->saddr[11] = 0xff;
		t->daddr[10] = t->daddr[11] = 0xff;
		__builtin_memcpy(&t->saddr[12], &s, 4);
		__builtin_memcpy(&t->daddr[12], &d, 4);
	} else {
		BPF_CORE_READ_INTO(&t->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&t->daddr, sk, __sk_common.skc_v6_daddr);
	}
	// Not skc_num: TCP_CLOSE releases the port (zeroing it) before the
	// tracepoint fires; inet_sport, which the tracepoint reports, stays.
	t->sport = __builtin_bswap16(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	t->dport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	t->netns = sock_netns(sk);
}

// state_src is where a state change's tuple comes from: the classic
// tracepoint's record or the socket itself (tp_btf). The tuple is built
// only when an event is sent or a passive open is checked, which keeps
// the common case (a socket that is not ours) to one map lookup.
struct state_src {
	const struct trace_event_raw_inet_sock_set_state *ctx; // NULL for tp_btf
	const struct sock *sk;
	__u16 family;
};

static __always_inline void src_tuple(const struct state_src *s, struct tuple *t)
{
	if (s->ctx)
		fill_tuple(t, s->ctx->saddr_v6, s->ctx->daddr_v6, s->ctx->sport, s->ctx->dport, s->sk);
	else
		tuple_of_sock(t, s->sk, s->family);
}

// on_set_state follows one state change of a TCP socket.
static __always_inline void on_set_state(const struct state_src *s, int oldstate, int newstate)
{
	const struct sock *sk = s->sk;
	__u64 key = (__u64)sk;
	struct tuple t = {};
	struct flow *f = bpf_map_lookup_elem(&flows, &key);

	if (f) {
		if (!f->ino)
			f->ino = sock_ino(sk);
		if (newstate == TCP_ESTABLISHED && !f->established) {
			__u64 now = bpf_ktime_get_ns();
			f->established = 1;
			f->open_ns = now;
			src_tuple(s, &t);
			send_event(&t, sk, f, EVENT_OPEN, now);
		} else if (newstate == TCP_CLOSE) {
			// A connect() that never got established is not a connection.
			if (f->established) {
				src_tuple(s, &t);
				send_event(&t, sk, f, EVENT_CLOSE, bpf_ktime_get_ns());
			}
			bpf_map_delete_elem(&flows, &key);
		}
		return;
	}

	struct flow nf = { .family = s->family };
	if (newstate == TCP_SYN_SENT) {
		nf.tgid = current_tgid();
		if (!is_target(nf.tgid))
			return;
		nf.role = ROLE_CLIENT;
		nf.ino = sock_ino(sk);
	} else if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		src_tuple(s, &t);
		struct listen_key lk = { .netns = t.netns, .port = t.sport };
		__u32 *owner = bpf_map_lookup_elem(&listen_ports, &lk);
		if (!owner)
			return;
		nf.tgid = *owner;
		nf.role = ROLE_SERVER;
		nf.established = 1;
		nf.open_ns = bpf_ktime_get_ns();
		send_event(&t, sk, &nf, EVENT_OPEN, nf.open_ns);
	} else if ((newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK ||
		    newstate == TCP_CLOSE) &&
		   (oldstate == TCP_ESTABLISHED || oldstate == TCP_CLOSE_WAIT)) {
		nf.tgid = current_tgid();
		if (!is_target(nf.tgid))
			return;
		nf.established = 1;
		nf.ino = sock_ino(sk);
		if (newstate == TCP_CLOSE) {
			src_tuple(s, &t);
			send_event(&t, sk, &nf, EVENT_CLOSE, bpf_ktime_get_ns());
			return;
		}
	} else {
		return;
	}
	if (bpf_map_update_elem(&flows, &key, &nf, BPF_ANY))
		stat_inc(STAT_FLOWS_FULL);
}

// skb_segs is the number of TCP segments in a retransmitted skb (TSO/GSO
// skbs carry many), as the kernel adds it to total_retrans.
static __always_inline __u64 skb_segs(const struct sk_buff *skb)
{
	const struct tcp_skb_cb *cb =
		(const void *)skb + bpf_core_field_offset(struct sk_buff, cb);
	__u16 segs = BPF_CORE_READ(cb, tcp_gso_segs);
	return segs ? segs : 1;
}

static __always_inline void on_retransmit(struct tuple *t, __u64 segs)
{
	__u64 zero = 0;
	__u64 *n = lookup_or_init(&retrans, t, &zero);

	if (n)
		__sync_fetch_and_add(n, segs);
}

// Two flavours of each program: classic tracepoints (a stable record
// layout; need tracefs) and BTF raw tracepoints (no tracefs; the same
// kernel events). User space attaches the first that works.

SEC("tracepoint/sock/inet_sock_set_state")
int tcp_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	__u16 family = ctx->family;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	struct state_src s = { .ctx = ctx, .sk = ctx->skaddr, .family = family };
	on_set_state(&s, ctx->oldstate, ctx->newstate);
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int tcp_retransmit(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	stat_inc(STAT_RETRANSMITS);
	__u16 family = ctx->family;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	// Since 6.10 the event also fires for attempts that failed (err, e.g.
	// the original still in the host queue): those sent nothing.
	if (bpf_core_field_exists(ctx->err) && ctx->err)
		return 0;
	struct tuple t = {};
	fill_tuple(&t, ctx->saddr_v6, ctx->daddr_v6, ctx->sport, ctx->dport, ctx->skaddr);
	on_retransmit(&t, skb_segs(ctx->skbaddr));
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(btf_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	struct state_src s = { .ctx = NULL, .sk = sk, .family = family };
	on_set_state(&s, oldstate, newstate);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(btf_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	stat_inc(STAT_RETRANSMITS);
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	// The third argument (err) exists where the tracepoint record has it;
	// failed attempts sent nothing.
	if (bpf_core_field_exists(struct trace_event_raw_tcp_retransmit_skb, err) && (int)ctx[2])
		return 0;
	struct tuple t = {};
	tuple_of_sock(&t, sk, family);
	on_retransmit(&t, skb_segs(skb));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
