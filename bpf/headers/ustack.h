// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// User stack snapshots for unwinding in user space (perf's approach): the
// user registers and a copy of the top of the user stack, taken at sample
// time. The DWARF unwinding itself runs in user space
// (internal/profiler/unwind), so code built without frame pointers (gcc -O2,
// the distributions' default) keeps its callers.
//
// The copy is read page by page from the stack pointer up, so a stack whose
// mapping ends before USTACK_MAX bytes still copies whole. When the frame
// pointer register points outside the copy (Go code calling C through cgo
// runs C on the system stack while rbp still chains the goroutine's frames),
// the frame-pointer chain from there is read too, so that the unwinder can
// continue beyond the copy.
//
// Include after vmlinux.h and bpf_helpers.h.

#ifndef CONTPROF_USTACK_H
#define CONTPROF_USTACK_H

#include "arch.h"

#define USTACK_MAX (32 * 1024) // bytes of stack copied at most
#define USTACK_PAGE 4096
#define USTACK_CHAIN 32        // frame-pointer links read beyond the copy
#define KSTACK_DEPTH 127

enum ustack_flags {
	USTACK_CUT = 1,       // the copy stopped at USTACK_MAX, not at the stack's end
	USTACK_NO_USER = 2,   // no user context (kernel thread)
	USTACK_KERNEL_ERR = 4,// kernel stack not read
};

enum stack_event_kind {
	EVENT_STACK = 1, // a stack_event
	EVENT_BLOCK = 2, // a block_event (off-CPU switch-in)
};

struct fp_link {
	__u64 fp, ra;
};

// A sample's stacks. Sent to user space truncated after data[ulen].
struct stack_event {
	__u32 kind;      // EVENT_STACK
	__u32 pid;       // tgid, in the pid namespace of the loader
	__u32 tid;       // kernel thread id
	__u32 flags;     // enum ustack_flags
	__u64 seq;       // off-CPU: names this snapshot in the block event
	__u32 p16;       // off-CPU recording probability in 1/65536 (0: 1)
	__u32 klen;      // kernel frames in kstack
	__u64 ip, sp, bp;
	__u32 ulen;      // bytes in data
	__u32 nchain;    // links in chain
	struct fp_link chain[USTACK_CHAIN];
	__u64 kstack[KSTACK_DEPTH];
	__u64 py_stack;  // py_stacks key (cpython.h), 0: none
	// Slack of one page: the verifier sees a chunk of up to a page read
	// at any offset below USTACK_MAX.
	__u8 data[USTACK_MAX + USTACK_PAGE];
};

// An off-CPU block: thread tid, whose snapshot seq was sent at switch-out,
// was off the CPU for ns (scaled by 1/p, as blocks).
struct block_event {
	__u32 kind;      // EVENT_BLOCK
	__u32 pid;
	__u32 tid;
	__u32 _pad;
	__u64 seq;
	__u64 ns;
	__u64 blocks;
};

#define STACK_EVENT_HEADER __builtin_offsetof(struct stack_event, data)

// Scratch space for building a stack_event (too big for the BPF stack),
// one per CPU. An array indexed by CPU rather than a per-CPU array, whose
// values are limited to 32 KiB. Sized to the possible CPUs by the loader;
// tracing programs do not migrate while they run.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct stack_event);
} ustack_scratch SEC(".maps");

// ustack_event returns this CPU's scratch event, or NULL.
static __always_inline struct stack_event *ustack_event(void)
{
	__u32 cpu = bpf_get_smp_processor_id();

	return bpf_map_lookup_elem(&ustack_scratch, &cpu);
}

// ustack_copy fills the user part of ev for the current task: registers,
// stack copy and, when rbp points elsewhere, the frame-pointer chain.
// It returns the number of bytes to send (header and copy).
static __always_inline __u32 ustack_copy(struct stack_event *ev)
{
	struct task_struct *task = bpf_get_current_task_btf();
	void *regs = (void *)bpf_task_pt_regs(task);
	__u64 n = 0;

	ev->ulen = 0;
	ev->nchain = 0;
	ev->flags = 0;
	ev->py_stack = 0; // set by programs that walk Python (cpython.h)
	if (!regs || (task->flags & 0x00200000 /* PF_KTHREAD */)) {
		ev->flags |= USTACK_NO_USER;
		ev->ip = ev->sp = ev->bp = 0;
		return STACK_EVENT_HEADER;
	}
	ev->ip = USER_IP(regs); // arch.h: per-architecture registers
	ev->sp = USER_SP(regs);
	ev->bp = USER_FP(regs);

	__u64 addr = ev->sp;
	for (int i = 0; i < USTACK_MAX / USTACK_PAGE + 1; i++) {
		if (n >= USTACK_MAX)
			break;
		__u64 chunk = USTACK_PAGE - (addr & (USTACK_PAGE - 1));
		if (chunk > USTACK_MAX - n)
			chunk = USTACK_MAX - n;
		// Bounds the verifier can follow (offset < USTACK_MAX, size at
		// most a page); the empty asm keeps the compiler from dropping
		// them as redundant.
		__u64 off = n;
		asm volatile("" : "+r"(off), "+r"(chunk));
		off &= USTACK_MAX - 1;
		if (chunk == 0 || chunk > USTACK_PAGE)
			break;
		asm volatile("" : "+r"(chunk));
		if (bpf_probe_read_user(&ev->data[off], chunk, (void *)addr))
			break; // end of the stack mapping
		n += chunk;
		addr += chunk;
	}
	if (n >= USTACK_MAX) {
		n = USTACK_MAX;
		ev->flags |= USTACK_CUT;
	}
	ev->ulen = n;

	__u64 fp = ev->bp;
	if (fp && (fp < ev->sp || fp >= ev->sp + n)) {
		__u32 k;
		for (k = 0; k < USTACK_CHAIN; k++) {
			struct fp_link l;
			__u64 pair[2];
			if (fp & 7)
				break;
			if (bpf_probe_read_user(pair, sizeof(pair), (void *)fp))
				break;
			l.fp = fp;
			l.ra = pair[1];
			ev->chain[k] = l;
			// Callers' frames are further up; a zero return address
			// ends the chain.
			if (pair[0] <= fp || !pair[1]) {
				k++;
				break;
			}
			fp = pair[0];
		}
		ev->nchain = k;
	}
	asm volatile("" : "+r"(n));
	if (n > USTACK_MAX)
		n = USTACK_MAX;
	return STACK_EVENT_HEADER + n;
}

// ustack_output sends size bytes of data to ring buffer rb. User space
// polls the ring a few times a second, so records do not wake it (a wake-up
// costs the sampled CPU more than the copy) unless the ring is filling up.
static __always_inline long ustack_output(void *rb, void *data, __u64 size)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA) > bpf_ringbuf_query(rb, BPF_RB_RING_SIZE) / 4)
		flags = BPF_RB_FORCE_WAKEUP;
	return bpf_ringbuf_output(rb, data, size, flags);
}

#endif
