//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// On-CPU sampler. Attached to one CPU-clock perf event per CPU; on every
// sample of a target process it records the user and kernel stacks and counts
// the (pid, user stack, kernel stack) triple.
//
// Counts and stacks are double-buffered (see DOUBLE_BUFFER in contprof.h):
// no stack id is ever freed while a count still refers to it.
//
// Unwinding (unwind_user set, the default): instead of the kernel's
// frame-pointer walk, the program sends the user registers, a copy of the
// top of the user stack and the kernel stack to user space through a ring
// buffer (see ustack.h), where the stack is unwound with the binaries'
// DWARF call frame information; counts are then kept in user space.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "contprof.h"
#include "ustack.h"
#include "cpython.h"

enum stat_index {
	STAT_SAMPLES = 0,        // samples of target processes
	STAT_USER_STACK_LOST,    // user stack not recorded (collision, full map)
	STAT_KERNEL_STACK_LOST,  // kernel stack not recorded (other than "none")
	STAT_COUNT_LOST,         // count map full: sample dropped
	STAT_EVENT_LOST,         // ring buffer full: sample dropped
	STAT_MAX,
};

struct sample_key {
	__u32 pid;
	__s32 user_stack_id;   // < 0: no user stack (see stats)
	__s32 kernel_stack_id; // -EFAULT: sampled in user mode
	__u32 pad;
	__u64 py_stack_id;     // py_stacks key, 0: no Python stack (cpython.h)
};

PID_FILTER_BITMAP(65536);
STATS(STAT_MAX);
DOUBLE_BUFFER(struct sample_key, __u64);

// Send stack snapshots to the ring buffer instead of counting frame-pointer
// stacks in the maps.
volatile const __u32 unwind_user = 0;

// Sized by user space before loading.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

static __always_inline void record(struct bpf_perf_event_data *ctx, __u32 tgid,
				   void *stacks, void *counts)
{
	struct sample_key key = { .pid = tgid };
	__u64 zero = 0;

	key.py_stack_id = py_record(tgid, (__u32)bpf_get_current_pid_tgid());
	key.user_stack_id = bpf_get_stackid(ctx, stacks, BPF_F_USER_STACK);
	if (key.user_stack_id < 0)
		stat_inc(STAT_USER_STACK_LOST);
	key.kernel_stack_id = bpf_get_stackid(ctx, stacks, 0);
	if (key.kernel_stack_id < 0 && key.kernel_stack_id != -EFAULT)
		stat_inc(STAT_KERNEL_STACK_LOST);

	__u64 *count = lookup_or_init(counts, &key, &zero);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		stat_inc(STAT_COUNT_LOST);
}

SEC("perf_event")
int oncpu_sample(struct bpf_perf_event_data *ctx)
{
	__u32 tgid = current_tgid();

	if (!is_target(tgid))
		return 0;

	stat_inc(STAT_SAMPLES);
	if (unwind_user) {
		struct stack_event *ev = ustack_event();
		if (!ev)
			return 0;
		ev->kind = EVENT_STACK;
		ev->pid = tgid;
		ev->tid = (__u32)bpf_get_current_pid_tgid();
		ev->seq = 0;
		ev->p16 = 0;
		long kb = bpf_get_stack(ctx, ev->kstack, sizeof(ev->kstack), 0);
		ev->klen = kb > 0 ? (__u64)kb / 8 : 0;
		__u32 size = ustack_copy(ev);
		ev->py_stack = py_record(tgid, ev->tid);
		if (kb < 0 && kb != -EFAULT)
			ev->flags |= USTACK_KERNEL_ERR;
		if (size > sizeof(*ev))
			return 0;
		if (ustack_output(&events, ev, size))
			stat_inc(STAT_EVENT_LOST);
		return 0;
	}
	if (active_buf)
		record(ctx, tgid, &stacks_1, &counts_1);
	else
		record(ctx, tgid, &stacks_0, &counts_0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
