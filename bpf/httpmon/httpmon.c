//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// HTTP/1.x exchange monitor on syscall tracepoints (no kprobes, no fentry).
//
// For the read and write families of a target process it looks at the first
// bytes that crossed the syscall only: an HTTP request line or status line.
// Request and response are paired per (process, fd) in the kernel:
//   server: request read  -> response written
//   client: request written -> response read
// and completed exchanges are counted there, per CPU, into duration
// histograms by series (process, role, method, status, path) and interval
// (aggs, aggs_short); only the exchanges of observed processes are also
// sent one by one (method, status, path, fd, start, duration) to the ring
// buffer. Bodies and headers are never copied out: the path is cut at the
// first space, '?' or line end and the rest of the copy is zeroed.
//
// Only the syscalls' exits are traced: by then a read's buffer is filled
// and the return value says how much of it is valid, and the arguments are
// still in the task's saved user registers. One tracepoint hit per system
// call, no per-thread state.
//
// Three attachment flavours share the logic: the socket tracepoints
// (sock:sock_send_length and sock:sock_recv_length, Linux 6.3+, fired at the
// end of every socket send and receive with its result, plus
// sock:inet_sock_set_state for close), per-syscall tracepoints
// (syscalls/sys_exit_*; needs tracefs to resolve ids) and the raw sys_exit
// tracepoint (no tracefs needed; fires for every system call). Any syscall
// tracepoint puts every task of the machine on the slow system call path
// (several hundred ns a call); the socket tracepoints run only where a
// socket sends or receives, so they are preferred.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "contprof.h"

#define PATH_LEN 128
#define HEAD_LEN 12 // "HTTP/1.1 200": the shortest thing we recognise
#define PATH_SHORT 24 // records of paths up to this long stop after it
#define METHOD_MAX 8 // "OPTIONS " and "CONNECT ": the longest method and its space
#define LINE_LEN (METHOD_MAX + PATH_LEN) // what one read of a request line takes
#define NBOUNDS 14 // histogram bucket bounds (httpmon.Bounds)

// System call numbers and argument registers per architecture.
#include "arch.h"

enum role {
	ROLE_SERVER = 1,
	ROLE_CLIENT = 2,
};

enum method {
	METHOD_GET = 1,
	METHOD_POST,
	METHOD_PUT,
	METHOD_DELETE,
	METHOD_HEAD,
	METHOD_PATCH,
	METHOD_OPTIONS,
	METHOD_CONNECT,
	METHOD_TRACE,
};

enum stat_index {
	STAT_EXCHANGES = 0,       // completed exchanges sent
	STAT_LOST,                // ring buffer full: exchange dropped
	STAT_UNMATCHED_REQUEST,   // request replaced or closed without response
	STAT_UNMATCHED_RESPONSE,  // response without a pending request
	STAT_MAX,
};

struct http_event {
	__u64 start_ns;    // CLOCK_MONOTONIC
	__u64 duration_ns;
	__u32 pid;         // tgid, in the loader's pid namespace
	__u32 fd;
	__u16 status;
	__u8 role;
	__u8 method;
	__u8 path_len;
	__u8 _pad[3];
	char path[PATH_LEN];
};

struct conn_key {
	__u32 tgid;
	__u32 fd;
};

// The aggregation key of an exchange: one series of a process in one
// interval (epoch). The path is zero past path_len, so equal paths hash
// alike.
struct agg_key {
	__u32 tgid;
	__u16 status;
	__u8 role;
	__u8 method;
	__u8 path_len;
	__u8 epoch;     // agg_epoch when the exchange completed
	__u8 _pad[6];
	char path[PATH_LEN];
};

// The key of aggs_short: an agg_key of a path ≤ PATH_SHORT bytes stops
// there (the same bytes; lookups pass the agg_key).
struct agg_key_short {
	__u32 tgid;
	__u16 status;
	__u8 role;
	__u8 method;
	__u8 path_len;
	__u8 epoch;
	__u8 _pad[6];
	char path[PATH_SHORT];
};

// What a series counted on one CPU: durations in ns, buckets over
// bounds_ns (the last one counts those above every bound).
struct agg_value {
	__u64 count;
	__u64 sum_ns;
	__u64 min_ns;
	__u64 max_ns;
	__u64 first_ns; // completion of the first exchange: the path cap's order
	__u64 buckets[NBOUNDS + 1];
};

// A connection's pending request holds the key of its exchange's series:
// the lookup in aggs reads it in place (no copy of the path).
struct conn_state {
	__u64 start_ns; // 0: no request pending
	__u8 held;      // a 1-byte read's byte that may start the next request
	__u8 _pad[7];
	struct agg_key key;
};

// The PID filter is a bitmap: the test every system call pays stays a
// couple of loads.
PID_FILTER_BITMAP(512);
STATS(STAT_MAX);

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct conn_key);
	__type(value, struct conn_state);
} conns SEC(".maps");

EVENT_RING(1 << 21);

// Completed exchanges are counted here, per CPU, by series and interval:
// no record per exchange leaves the kernel. User space flips agg_epoch,
// waits for programs in flight, then reads and deletes the old epoch's
// entries. Not preallocated: the entries of one interval's series.
#define AGG_MAP(name, key_type)                         \
	struct {                                        \
		__uint(type, BPF_MAP_TYPE_PERCPU_HASH); \
		__uint(map_flags, BPF_F_NO_PREALLOC);   \
		__uint(max_entries, 8192);              \
		__type(key, key_type);                  \
		__type(value, struct agg_value);        \
	} name SEC(".maps")

AGG_MAP(aggs, struct agg_key);
// Series of paths ≤ PATH_SHORT bytes (most): a 40-byte key to hash and
// compare instead of 144.
AGG_MAP(aggs_short, struct agg_key_short);
_Static_assert(sizeof(struct agg_key_short) == __builtin_offsetof(struct agg_key, path) + PATH_SHORT, "agg_key_short");

// agg_epoch[0] is the interval exchanges are counted in (a map, not a
// global: a mapped .bss would outlive Close until the GC unmaps it).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} agg_epoch SEC(".maps");

// Bucket bounds in ns (httpmon.Bounds, set by the loader).
volatile const __u64 bounds_ns[NBOUNDS] = {};

// Processes whose exchanges are also sent one by one to the ring buffer
// (a network task observes them): a bitmap like target_pids.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, __u64);
} observed_pids SEC(".maps");

static __always_inline int is_observed(__u32 tgid)
{
	__u32 word = tgid >> 6;
	__u64 *bits = bpf_map_lookup_elem(&observed_pids, &word);

	return bits && ((*bits >> (tgid & 63)) & 1);
}

static const struct agg_value zero_agg;

static const struct conn_state zero_conn;

// The record up to its path: a record is EVENT_HEAD + PATH_SHORT bytes when
// path_len ≤ PATH_SHORT, else the whole struct.
#define EVENT_HEAD 32
_Static_assert(__builtin_offsetof(struct http_event, path) == EVENT_HEAD, "EVENT_HEAD");

// Force the types into BTF for bpf2go -type.
const struct http_event *unused_http_event __attribute__((unused));
const struct agg_key *unused_agg_key __attribute__((unused));
const struct agg_key_short *unused_agg_key_short __attribute__((unused));
const struct agg_value *unused_agg_value __attribute__((unused));

extern void tcp_recvmsg __ksym;
extern void *bpf_rdonly_cast(const void *obj__ign, __u32 btf_id) __ksym;

// now_ns is CLOCK_MONOTONIC in ns. rsk is the socket of a receive that
// just returned (socket flavour), else NULL: a plain TCP receive that
// copied data has just refreshed tp->tcp_clock_cache with that clock
// (tcp_recvmsg → tcp_rcv_space_adjust → tcp_mstamp_refresh), which saves
// reading the clock again (~50 ns here).
static __always_inline __u64 now_ns(struct sock *rsk)
{
	if (rsk) {
		if (rsk->__sk_common.skc_prot->recvmsg == (void *)&tcp_recvmsg) {
			struct tcp_sock *tp = bpf_rdonly_cast(rsk, bpf_core_type_id_kernel(struct tcp_sock));
			return tp->tcp_clock_cache;
		}
	}
	return bpf_ktime_get_ns();
}

static __always_inline int is_inbound(__u32 nr)
{
	return nr == NR_read || nr == NR_readv || nr == NR_recvfrom || nr == NR_recvmsg;
}

static __always_inline void on_close(__u32 tgid, __u32 fd)
{
	struct conn_key key = { .tgid = tgid, .fd = fd };
	struct conn_state *s = bpf_map_lookup_elem(&conns, &key);

	if (!s)
		return;
	if (s->start_ns)
		stat_inc(STAT_UNMATCHED_REQUEST);
	bpf_map_delete_elem(&conns, &key);
}

// parse_method returns the method of a request line and the length of the
// method token plus its space, or 0.
static __always_inline int parse_method(const char *h, __u32 *mlen)
{
	int m = 0;
	__u32 n = 0;

	switch (h[0]) {
	case 'G':
		if (h[1] == 'E' && h[2] == 'T' && h[3] == ' ')
			m = METHOD_GET, n = 4;
		break;
	case 'P':
		if (h[1] == 'O' && h[2] == 'S' && h[3] == 'T' && h[4] == ' ')
			m = METHOD_POST, n = 5;
		else if (h[1] == 'U' && h[2] == 'T' && h[3] == ' ')
			m = METHOD_PUT, n = 4;
		else if (h[1] == 'A' && h[2] == 'T' && h[3] == 'C' && h[4] == 'H' && h[5] == ' ')
			m = METHOD_PATCH, n = 6;
		break;
	case 'D':
		if (h[1] == 'E' && h[2] == 'L' && h[3] == 'E' && h[4] == 'T' && h[5] == 'E' && h[6] == ' ')
			m = METHOD_DELETE, n = 7;
		break;
	case 'H':
		if (h[1] == 'E' && h[2] == 'A' && h[3] == 'D' && h[4] == ' ')
			m = METHOD_HEAD, n = 5;
		break;
	case 'O':
		if (h[1] == 'P' && h[2] == 'T' && h[3] == 'I' && h[4] == 'O' && h[5] == 'N' && h[6] == 'S' && h[7] == ' ')
			m = METHOD_OPTIONS, n = 8;
		break;
	case 'C':
		if (h[1] == 'O' && h[2] == 'N' && h[3] == 'N' && h[4] == 'E' && h[5] == 'C' && h[6] == 'T' && h[7] == ' ')
			m = METHOD_CONNECT, n = 8;
		break;
	case 'T':
		if (h[1] == 'R' && h[2] == 'A' && h[3] == 'C' && h[4] == 'E' && h[5] == ' ')
			m = METHOD_TRACE, n = 6;
		break;
	}
	if (!m || n >= HEAD_LEN)
		return 0;
	// The request target: origin-form "/x", asterisk "*", absolute-form
	// "http://…", or an authority for CONNECT.
	char c = h[n];
	if (!(c == '/' || c == '*' || c == 'h' || (m == METHOD_CONNECT && c > ' ')))
		return 0;
	*mlen = n;
	return m;
}

static __always_inline int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

// parse_status returns the code of an HTTP/1.x status line, or 0.
static __always_inline int parse_status(const char *h)
{
	if (h[0] != 'H' || h[1] != 'T' || h[2] != 'T' || h[3] != 'P' || h[4] != '/' ||
	    h[5] != '1' || h[6] != '.' || h[8] != ' ')
		return 0;
	if (!is_digit(h[9]) || !is_digit(h[10]) || !is_digit(h[11]))
		return 0;
	return (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
}

// copy_path copies PATH_LEN bytes of line from off (the path's start: 3 to
// METHOD_MAX) into path; constant offsets, so the stack reads stay plain
// loads.
static __always_inline void copy_path(char *path, const char *line, __u32 off)
{
	switch (off) {
	case 3:
		__builtin_memcpy(path, line + 3, PATH_LEN);
		break;
	case 4:
		__builtin_memcpy(path, line + 4, PATH_LEN);
		break;
	case 5:
		__builtin_memcpy(path, line + 5, PATH_LEN);
		break;
	case 6:
		__builtin_memcpy(path, line + 6, PATH_LEN);
		break;
	case 7:
		__builtin_memcpy(path, line + 7, PATH_LEN);
		break;
	default:
		__builtin_memcpy(path, line + METHOD_MAX, PATH_LEN);
		break;
	}
}

// on_request records a request line. line holds the call's first n bytes
// (at most LINE_LEN); mlen counts the method token and its space; skip of
// them were in a previous read (the held byte).
static __always_inline void on_request(struct conn_key *key, struct sock *rsk, struct conn_state *s, int inbound,
				       const char *line, __u64 n, __u32 mlen, __u32 skip, int method)
{
	if (!s) {
		bpf_map_update_elem(&conns, key, &zero_conn, BPF_ANY);
		s = bpf_map_lookup_elem(&conns, key);
		if (!s)
			return;
	}
	if (s->start_ns)
		stat_inc(STAT_UNMATCHED_REQUEST);
	// A server's exchange starts when its read of the request returns, a
	// client's when its write of the request returns.
	s->start_ns = now_ns(rsk);
	s->key.tgid = key->tgid;
	s->key.role = inbound ? ROLE_SERVER : ROLE_CLIENT;
	s->key.method = method;
	s->held = 0;

	mlen -= skip;
	if (mlen > METHOD_MAX)
		return;
	__u64 plen = n > mlen ? n - mlen : 0;
	if (plen > PATH_LEN)
		plen = PATH_LEN;
	// Bytes past n are whatever the stack held: cut off below with the
	// rest of the line.
	copy_path(s->key.path, line, mlen);

	__u32 i;
	for (i = 0; i < PATH_LEN; i++) {
		if (i >= plen)
			break;
		char c = s->key.path[i];
		if (c == ' ' || c == '?' || c == '#' || c == '\r' || c == '\n' || c == 0)
			break;
	}
	s->key.path_len = i;
	// Whatever followed the path (version, headers) is not kept: zero it
	// a word at a time.
	__u64 *w = (__u64 *)s->key.path;
	for (__u32 k = 0; k < PATH_LEN / 8; k++) {
		__u32 off = k * 8;
		if (off >= i)
			w[k] = 0;
		else if (off + 8 > i)
			w[k] &= (1ULL << ((i - off) * 8)) - 1; // little-endian: keep low bytes
	}
}

// emit sends the exchange of s: a record of EVENT_HEAD + path_bytes (a
// constant), path_len ≤ path_bytes. The state's path is zero past its
// length.
static __always_inline int emit(struct conn_key *key, struct conn_state *s, __u64 now, int status,
				__u8 path_len, const __u32 path_bytes)
{
	struct http_event *e = bpf_ringbuf_reserve(&events, EVENT_HEAD + path_bytes, 0);

	if (!e)
		return -1;
	e->start_ns = s->start_ns;
	e->duration_ns = now - s->start_ns;
	e->pid = key->tgid;
	e->fd = key->fd;
	e->status = status;
	e->role = s->key.role;
	e->method = s->key.method;
	e->path_len = path_len;
	__builtin_memset(e->_pad, 0, sizeof(e->_pad));
	__builtin_memcpy(e->path, s->key.path, path_bytes);
	ring_submit(e);
	return 0;
}

// count adds an exchange of duration dur, completed at now, to the series
// s->key names (status and epoch set by the caller) in map (aggs or
// aggs_short); -1 when the table is full.
static __always_inline int count(void *map, struct conn_state *s, __u64 now, __u64 dur)
{
	struct agg_value *v = bpf_map_lookup_elem(map, &s->key);

	if (!v) {
		long err = bpf_map_update_elem(map, &s->key, &zero_agg, BPF_NOEXIST);
		if (err && err != -EEXIST)
			return -1;
		v = bpf_map_lookup_elem(map, &s->key);
		if (!v)
			return -1;
	}
	// This CPU's slot: no other program writes it.
	if (!v->count) {
		v->min_ns = dur;
		v->first_ns = now;
	} else if (dur < v->min_ns) {
		v->min_ns = dur;
	}
	if (dur > v->max_ns)
		v->max_ns = dur;
	v->count++;
	v->sum_ns += dur;
	__u32 b;
	for (b = 0; b < NBOUNDS; b++)
		if (dur <= bounds_ns[b])
			break;
	v->buckets[b]++;
	return 0;
}

static __always_inline void on_response(struct conn_key *key, struct sock *rsk, int inbound, int status)
{
	struct conn_state *s = bpf_map_lookup_elem(&conns, key);
	int want = inbound ? ROLE_CLIENT : ROLE_SERVER;

	if (!s || !s->start_ns || s->key.role != want) {
		stat_inc(STAT_UNMATCHED_RESPONSE);
		return;
	}
	// Interim responses (100 Continue, 102, 103) precede the final one;
	// 101 Switching Protocols ends the HTTP exchange.
	if (status < 200 && status != 101)
		return;

	__u64 now = now_ns(rsk);
	// A clock cache that this receive did not refresh after all would be
	// older than the start: read the clock rather than wrap the duration.
	if (now < s->start_ns)
		now = bpf_ktime_get_ns();
	s->key.status = status;
	__u32 zero = 0;
	__u32 *epoch = bpf_map_lookup_elem(&agg_epoch, &zero);
	s->key.epoch = epoch ? *epoch : 0;
	__u64 dur = now - s->start_ns;
	int err = s->key.path_len <= PATH_SHORT ? count(&aggs_short, s, now, dur) : count(&aggs, s, now, dur);
	if (is_observed(key->tgid)) {
		__u8 path_len = s->key.path_len;
		// Most paths are short: their record stops after PATH_SHORT bytes
		// of path (one or two cache lines with the ring's header, not
		// four).
		err |= path_len <= PATH_SHORT ? emit(key, s, now, status, path_len, PATH_SHORT)
					      : emit(key, s, now, status, path_len, PATH_LEN);
	}
	s->start_ns = 0;
	stat_inc(err ? STAT_LOST : STAT_EXCHANGES);
}

// on_data inspects the first bytes of data a target process read (inbound)
// or wrote: one probe read takes what a request line's method and path
// need, and at most one lookup of the connection follows.
static __always_inline void on_data(struct conn_key *key, struct sock *rsk, const char *buf, __u64 n, int inbound)
{
	struct conn_state *s;
	char line[LINE_LEN];
	char *head = line;

	if (n < HEAD_LEN - 1)
		return;
	if (n > LINE_LEN)
		n = LINE_LEN;
	if (bpf_probe_read_user(line, n, buf))
		return;
	if (n >= HEAD_LEN) {
		int status = parse_status(head);
		if (status) {
			on_response(key, rsk, inbound, status);
			return;
		}
		__u32 mlen = 0;
		int method = parse_method(head, &mlen);
		if (method) {
			on_request(key, rsk, bpf_map_lookup_elem(&conns, key), inbound, line, n, mlen, 0, method);
			return;
		}
	}
	if (!inbound)
		return;
	s = bpf_map_lookup_elem(&conns, key);
	if (!s || !s->held)
		return;
	// The request's first byte came in the previous, 1-byte read.
	char head2[HEAD_LEN];
	head2[0] = s->held;
	s->held = 0;
	__builtin_memcpy(head2 + 1, head, HEAD_LEN - 1);
	__u32 mlen = 0;
	int method = parse_method(head2, &mlen);
	if (method)
		on_request(key, rsk, s, inbound, line, n, mlen, 1, method);
}

// on_call handles the return of a target process's system call nr, with
// arguments fd, a1, a2.
static __always_inline int on_call(__u32 tgid, struct sock *rsk, long nr, long ret, __u64 fd, __u64 a1, __u64 a2)
{
	const char *buf;
	__u64 cap;
	struct iovec iov;

	switch (nr) {
	case NR_read:
	case NR_write:
	case NR_recvfrom:
	case NR_sendto:
		buf = (const char *)a1;
		cap = a2;
		break;
	case NR_readv:
	case NR_writev:
		if ((long)a2 < 1 || bpf_probe_read_user(&iov, sizeof(iov), (void *)a1))
			return 0;
		buf = iov.iov_base;
		cap = iov.iov_len;
		break;
	case NR_recvmsg:
	case NR_sendmsg: {
		struct user_msghdr msg;
		if (bpf_probe_read_user(&msg, sizeof(msg), (void *)a1))
			return 0;
		if (msg.msg_iovlen < 1 || !msg.msg_iov)
			return 0;
		if (bpf_probe_read_user(&iov, sizeof(iov), msg.msg_iov))
			return 0;
		buf = iov.iov_base;
		cap = iov.iov_len;
		break;
	}
	case NR_close:
		if (ret == 0)
			on_close(tgid, fd);
		return 0;
	default:
		return 0;
	}
	if (ret < 1 || !buf)
		return 0;

	struct conn_key key = { .tgid = tgid, .fd = fd };
	int inbound = is_inbound(nr);
	if (inbound && ret == 1 && cap == 1) {
		// Go's net/http reads one byte ahead while a handler runs (to
		// notice a client going away); that byte can be the first of the
		// next request. Only on a connection that has served one already.
		struct conn_state *s = bpf_map_lookup_elem(&conns, &key);
		char c;
		if (s && s->key.role == ROLE_SERVER && !bpf_probe_read_user(&c, 1, buf))
			s->held = c >= 'A' && c <= 'Z' ? c : 0;
		return 0;
	}
	__u64 n = ret;
	if (n > cap)
		n = cap;
	on_data(&key, inbound ? rsk : 0, buf, n, inbound);
	return 0;
}

// on_exit is on_call with the arguments from the user registers saved at
// system call entry (syscall tracepoints: probe reads).
static __always_inline int on_exit(__u32 tgid, long nr, long ret)
{
	if (ret < 1 && nr != NR_close)
		return 0; // EAGAIN and friends: the common case in event loops
	void *regs = (void *)bpf_task_pt_regs(bpf_get_current_task_btf());
	return on_call(tgid, 0, nr, ret, SYSCALL_EXIT_ARG0(regs), SYSCALL_EXIT_ARG1(regs), SYSCALL_EXIT_ARG2(regs));
}

// Per-syscall tracepoints: one program attached to syscalls/sys_exit_<name>
// of every system call of interest.
struct sys_exit_ctx {
	__u64 common;
	__s32 nr;
	__u32 _pad;
	__s64 ret;
};

SEC("tracepoint/syscalls/sys_exit_io")
int sys_exit_io(struct sys_exit_ctx *ctx)
{
	__u32 tgid = current_tgid();

	if (!is_target(tgid))
		return 0;
	return on_exit(tgid, ctx->nr, ctx->ret);
}

// Socket tracepoints: in the context of the system call that sends or
// receives (its number and arguments are in the task's saved registers);
// sends from the kernel itself (sendfile, splice) carry another number and
// are ignored like any other system call.
// The current task and its saved registers are trusted (BTF) pointers here:
// plain loads, no probe-read helper calls. In the initial PID namespace the
// task's tgid is the loader's view, read without a helper call.
static __always_inline __u32 sock_tgid(struct task_struct *task)
{
	return pidns_ino ? current_tgid() : task->tgid;
}

// on_sock handles a socket send or receive (rsk: the socket of a receive).
static __always_inline int on_sock(struct sock *rsk, int ret)
{
	if (ret < 1)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 tgid = sock_tgid(task);
	if (!is_target(tgid))
		return 0;
	void *regs = (void *)bpf_task_pt_regs(task);
	return on_call(tgid, rsk, BTF_SYSCALL_NR(regs), ret, BTF_SYSCALL_EXIT_ARG0(regs),
		       BTF_SYSCALL_EXIT_ARG1(regs), BTF_SYSCALL_EXIT_ARG2(regs));
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(sock_send, struct sock *sk, int ret, int flags)
{
	return on_sock(0, ret);
}

#define MSG_PEEK 2

SEC("tp_btf/sock_recv_length")
int BPF_PROG(sock_recv, struct sock *sk, int ret, int flags)
{
	if (flags & MSG_PEEK)
		return 0; // the same bytes come again
	return on_sock(sk, ret);
}

// Closing a TCP socket changes its state inside close(2): the fd is the
// system call's argument. (Without it, the fd's next request would replace
// a pending one anyway.)
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(sock_state, const struct sock *sk, const int oldstate, const int newstate)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 tgid = sock_tgid(task);

	if (!is_target(tgid))
		return 0;
	void *regs = (void *)bpf_task_pt_regs(task);
	if (BTF_SYSCALL_NR(regs) != NR_close)
		return 0;
	on_close(tgid, BTF_SYSCALL_EXIT_ARG0(regs));
	return 0;
}

// Raw sys_exit: for hosts without tracefs.
SEC("raw_tracepoint/sys_exit")
int raw_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 tgid = current_tgid();

	if (!is_target(tgid))
		return 0;
	return on_exit(tgid, SYSCALL_NR((void *)ctx->args[0]), ctx->args[1]);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
