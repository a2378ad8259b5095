//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// Off-CPU profiler on sched_switch (tp_btf). When a thread of a target
// process is switched out, the program records the time and the thread's
// user and kernel stacks (the tracepoint runs in the context of the thread
// going off the CPU, so bpf_get_stackid sees its stacks). When the thread is
// switched in again, the time it was off the CPU is added to the
// (process, user stack, kernel stack) key.
//
// Buffers. Counts and stacks are double-buffered as in the on-CPU sampler,
// but a block may span a buffer flip: its stacks were recorded in the buffer
// active at switch-out, its time is added at switch-in to the counts of the
// buffer active then. So a count key names the stack buffer its ids belong
// to (stack_buf), counts are written only at switch-in (the inactive counts
// map is stable once in-flight programs are done), and user space keeps, when
// it clears a stack map, the ids still referenced by blocked threads
// (offcpu_start) and by counts not yet drained.
//
// Cost. Taking the two stacks is most of the cost of a switch-out (several
// microseconds on a VM), which a thread that switches tens of thousands of
// times a second would pay at every switch. So each CPU walks at most about
// max_stacks_per_sec stacks a second: when its target switch-outs came
// faster than that in the previous window (100 ms, shorter in a burst),
// each switch-out of the next window is recorded with probability
// p = budget / rate (decided before the block's length is known) and its
// time counted as time / p, so that totals and shares stay unbiased.
// Threads that block rarely are always recorded (p = 1).
//
// Unwinding (unwind_user set, the default): at switch-out the program sends
// the user registers, a copy of the top of the user stack and the kernel
// stack to user space (see ustack.h), named by the switch-out time; at
// switch-in it sends the block's time for that snapshot. User space unwinds
// the snapshots with the binaries' DWARF call frame information and counts
// the time; the stack and counts maps are then unused.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "contprof.h"
#include "ustack.h"
#include "cpython.h"

#define TASK_DEAD 0x80

// Sized by user space before loading.
#define DEFAULT_THREADS 16384

enum stat_index {
	STAT_SWITCH_OUT = 0,    // target threads switched out (stacks taken)
	STAT_BLOCKS,            // blocks counted (>= min_block_ns)
	STAT_SHORT_BLOCKS,      // blocks shorter than min_block_ns, dropped
	STAT_USER_STACK_LOST,   // user stack not recorded (collision, full map)
	STAT_KERNEL_STACK_LOST, // kernel stack not recorded
	STAT_COUNT_LOST,        // counts map full: block dropped
	STAT_UNSAMPLED,         // unused: skipped switch-outs are counted in rates
	STAT_EVENT_LOST,        // ring buffer full: snapshot or block dropped
	STAT_MAX,
};

struct block_key {
	__u32 pid;             // tgid, in the pid namespace of the loader
	__s32 user_stack_id;   // < 0: no user stack (see stats)
	__s32 kernel_stack_id; // < 0: no kernel stack
	__u32 stack_buf;       // the stack map (0 or 1) the ids belong to
	__u64 py_stack_id;     // py_stacks key, 0: no Python stack (cpython.h)
};

struct block_value {
	__u64 ns;     // total time off the CPU (scaled by 1/p)
	__u64 blocks; // number of blocks (scaled by 1/p)
};

// A thread of a target process that is off the CPU.
struct start {
	__u64 ts;
	__u32 pid; // tgid, as in block_key
	__s32 user_stack_id;
	__s32 kernel_stack_id;
	__u16 stack_buf;
	__u16 p16; // recording probability, in 1/65536 (65536 stored as 0)
	__u64 py_stack_id;
};

// Per-CPU rate of target switch-outs, for the stack budget.
struct rate {
	__u64 window_start;
	__u64 switch_outs;
	__u32 p16; // probability for this window, in 1/65536; 0: not set (1)
	// Switch-outs skipped by the budget: counted here rather than in stats,
	// which would cost a second map lookup on the most frequent path.
	__u64 unsampled;
};

// The PID filter: every context switch of the machine consults it twice; a
// bitmap lookup is about 35 ns a switch cheaper than a hash lookup.
PID_FILTER_BITMAP(65536);
STATS(STAT_MAX);
DOUBLE_BUFFER(struct block_key, struct block_value);

// Keyed by the kernel's thread id (task_struct.pid). LRU: a thread that never
// runs again (killed while blocked) cannot fill the map.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, DEFAULT_THREADS);
	__type(key, __u32);
	__type(value, struct start);
} offcpu_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rate);
} rates SEC(".maps");

// Threads that may have an offcpu_start entry, one bit per thread id (word
// tid/64, bit tid%64; sized like target_pids). Every switch-in of the
// machine tests its bit, an inlined array load, instead of looking the
// thread up in the hash map: only threads recorded at switch-out (a few
// hundred a second per CPU under the stack budget) pay the lookup. A bit
// left set after its entry went (exit, eviction, user space) costs one
// lookup that misses and clears it.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} blocked_tids SEC(".maps");

static __always_inline __u64 *blocked_word(__u32 tid)
{
	__u32 word = tid >> 6;

	return bpf_map_lookup_elem(&blocked_tids, &word);
}

// Send stack snapshots and blocks to the ring buffer (see the top).
volatile const __u32 unwind_user = 0;

// Sized by user space before loading.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

// Blocks shorter than this are not counted.
volatile const __u64 min_block_ns = 0;

// Stack walks per second per CPU before switch-outs are sampled; 0: no limit.
volatile const __u64 max_stacks_per_sec = 0;

#define RATE_WINDOW_NS 100000000ULL
#define P_ONE 65536

static __always_inline void add_block(void *counts, struct block_key *key, __u64 ns, __u64 blocks)
{
	struct block_value zero = {};
	struct block_value *v = lookup_or_init(counts, key, &zero);

	if (!v) {
		stat_inc(STAT_COUNT_LOST);
		return;
	}
	__sync_fetch_and_add(&v->ns, ns);
	__sync_fetch_and_add(&v->blocks, blocks);
}

// next is coming back on the CPU: count the time since it left.
static __always_inline void switch_in(struct task_struct *next)
{
	__u32 tid = next->pid;
	__u64 *bits = blocked_word(tid);
	__u64 bit = 1ULL << (tid & 63);

	// Threads without a recorded switch-out (every other thread of the
	// machine, and target threads the stack budget skipped) stop here.
	if (bits) {
		if (!(*bits & bit))
			return;
		__sync_fetch_and_and(bits, ~bit);
	} else if (!pidns_ino && !is_target(next->tgid)) {
		return; // beyond the bitmap (not sized from pid_max)
	}
	struct start *st = bpf_map_lookup_elem(&offcpu_start, &tid);
	if (!st)
		return;
	// Read the clock only here: on a VM it costs as much as the rest of a
	// non-target switch.
	__u64 delta = bpf_ktime_get_ns() - st->ts;
	__u64 p16 = st->p16 ? st->p16 : P_ONE;
	struct block_key key = {
		.pid = st->pid,
		.user_stack_id = st->user_stack_id,
		.kernel_stack_id = st->kernel_stack_id,
		.stack_buf = st->stack_buf,
		.py_stack_id = st->py_stack_id,
	};
	if (delta >= min_block_ns && (!pidns_ino || is_target(key.pid))) {
		stat_inc(STAT_BLOCKS);
		__u64 ns = delta, blocks = 1;
		if (p16 < P_ONE) {
			ns = delta * P_ONE / p16;
			blocks = P_ONE / p16;
		}
		if (unwind_user) {
			struct block_event be = {
				.kind = EVENT_BLOCK,
				.pid = st->pid,
				.tid = tid,
				.seq = st->ts,
				.ns = ns,
				.blocks = blocks,
			};
			if (ustack_output(&events, &be, sizeof(be)))
				stat_inc(STAT_EVENT_LOST);
		} else if (active_buf)
			add_block(&counts_1, &key, ns, blocks);
		else
			add_block(&counts_0, &key, ns, blocks);
	} else {
		stat_inc(STAT_SHORT_BLOCKS);
	}
	// Deleted after the count is in: user space, scanning this map and
	// then the counts, never misses a stack id that is still needed.
	bpf_map_delete_elem(&offcpu_start, &tid);
}

// window_p16 is the probability of the current window, drawn against.
static __always_inline __u32 window_p16(struct rate *r, bool *skip)
{
	__u32 p = r->p16 ? r->p16 : P_ONE;

	*skip = p < P_ONE && (bpf_get_prandom_u32() & 0xffff) >= p;
	if (*skip)
		r->unsampled++;
	return p;
}

// sample_p16 counts a target switch-out on this CPU and returns the
// probability of recording it, in 1/65536: the budget over the rate of the
// previous window, at most 1. *skip is set when this switch-out is not
// recorded (drawn against that probability).
static __always_inline __u32 sample_p16(bool *skip)
{
	__u32 zero = 0;

	*skip = false;
	if (!max_stacks_per_sec)
		return P_ONE;
	struct rate *r = bpf_map_lookup_elem(&rates, &zero);
	if (!r)
		return P_ONE;
	// The clock costs as much as the rest of an unsampled switch-out on a
	// VM (and the coarse one is not allowed here): read it every 16th.
	if ((++r->switch_outs & 15) != 1)
		return window_p16(r, skip);
	__u64 now = bpf_ktime_get_ns();
	if (!r->window_start) {
		r->window_start = now;
		r->switch_outs = 1;
		return P_ONE;
	}
	__u64 elapsed = now - r->window_start;
	// A window ends after 100 ms, or sooner once it has seen as many
	// switch-outs as the budget allows in 100 ms: a burst is sampled
	// within a few hundred switch-outs.
	__u64 window_budget = max_stacks_per_sec / 10;
	if (elapsed < RATE_WINDOW_NS && r->switch_outs < window_budget)
		return window_p16(r, skip);
	__u64 p = P_ONE;
	// Past a second the count is below the budget (the window would have
	// ended on it): p = 1.
	if (elapsed < 1000000000ULL) {
		// p = budget * elapsed / switch_outs, in 1/65536, in 1.024 us
		// units of elapsed so that nothing overflows.
		p = max_stacks_per_sec * (elapsed >> 10) * P_ONE / r->switch_outs * 1024 / 1000000000ULL;
		if (p > P_ONE)
			p = P_ONE;
		if (p < 1)
			p = 1;
	}
	r->p16 = p;
	r->window_start = now;
	r->switch_outs = 1;
	return window_p16(r, skip);
}

// record_start stores the switch-out of thread tid and marks it blocked, so
// that its switch-in looks it up. The thread cannot be switched in before
// this program returns (it is still on this CPU).
static __always_inline void record_start(__u32 tid, struct start *st)
{
	if (bpf_map_update_elem(&offcpu_start, &tid, st, BPF_ANY))
		return;
	__u64 *bits = blocked_word(tid);
	if (bits)
		__sync_fetch_and_or(bits, 1ULL << (tid & 63));
}

// prev (the current task) is going off the CPU: remember when and where.
static __always_inline void switch_out(void *ctx, struct task_struct *prev)
{
	__u32 tgid;

	// A dying thread never comes back.
	if (prev->__state & TASK_DEAD)
		return;
	// prev is the current task: in the initial namespace its tgid is
	// ours, read without the helper call.
	tgid = pidns_ino ? current_tgid() : prev->tgid;
	if (!is_target(tgid))
		return;

	bool skip;
	__u32 p16 = sample_p16(&skip);
	if (skip)
		return; // counted in rates
	stat_inc(STAT_SWITCH_OUT);
	__u32 buf = active_buf;
	struct start st = { .pid = tgid, .stack_buf = buf, .p16 = p16 & 0xffff };
	__u32 tid = prev->pid;
	if (unwind_user) {
		struct stack_event *ev = ustack_event();
		if (!ev)
			return;
		ev->kind = EVENT_STACK;
		ev->pid = tgid;
		ev->tid = tid;
		ev->p16 = st.p16;
		long kb = bpf_get_stack(ctx, ev->kstack, sizeof(ev->kstack), 0);
		ev->klen = kb > 0 ? (__u64)kb / 8 : 0;
		__u32 size = ustack_copy(ev);
		ev->py_stack = py_record(tgid, tid);
		if (kb < 0) {
			ev->flags |= USTACK_KERNEL_ERR;
			stat_inc(STAT_KERNEL_STACK_LOST);
		}
		// Taken after the stacks, so their cost is not counted as
		// off-CPU time; it names the snapshot.
		st.ts = bpf_ktime_get_ns();
		ev->seq = st.ts;
		if (size > sizeof(*ev))
			return;
		if (ustack_output(&events, ev, size)) {
			stat_inc(STAT_EVENT_LOST);
			return;
		}
		record_start(tid, &st);
		return;
	}
	if (buf) {
		st.user_stack_id = bpf_get_stackid(ctx, &stacks_1, BPF_F_USER_STACK);
		st.kernel_stack_id = bpf_get_stackid(ctx, &stacks_1, 0);
	} else {
		st.user_stack_id = bpf_get_stackid(ctx, &stacks_0, BPF_F_USER_STACK);
		st.kernel_stack_id = bpf_get_stackid(ctx, &stacks_0, 0);
	}
	if (st.user_stack_id < 0 && st.user_stack_id != -EFAULT)
		stat_inc(STAT_USER_STACK_LOST);
	if (st.kernel_stack_id < 0)
		stat_inc(STAT_KERNEL_STACK_LOST);
	st.py_stack_id = py_record(tgid, tid);
	// Taken after the stacks, so their cost is not counted as off-CPU time.
	st.ts = bpf_ktime_get_ns();
	record_start(tid, &st);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(offcpu_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	switch_in(next);
	switch_out(ctx, prev);
	return 0;
}

// Per-thread state is dropped when the thread exits. An entry normally
// goes at switch-in, but one is left behind when its process left the filter
// while the thread was blocked; the LRU would evict it in time, this is
// sooner. Not filtered: the thread's process may no longer be a target.
SEC("tp_btf/sched_process_exit")
int BPF_PROG(offcpu_exit, struct task_struct *task)
{
	__u32 tid = task->pid;

	bpf_map_delete_elem(&offcpu_start, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
