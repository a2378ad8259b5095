//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// One pass over every task of the machine (a BPF task iterator) that writes
// a fixed-size binary record per user-space process: what the process
// scanner would otherwise get by having the kernel format /proc/PID/stat
// (and list /proc) for every process every second.
//
// The iterator visits every thread; only thread-group leaders of user
// processes produce a record, so the other threads cost one check each.
// The leader walks its thread list (signal->thread_head, as the kernel's
// thread_group_cputime does) to sum the CPU time of its live threads, and
// adds the time of threads already gone (signal's totals). The walk is
// retried when signal->stats_lock's sequence shows an exit in between, so a
// thread's time is never counted twice or lost, as with /proc.
//
// Figures are raw kernel values in the kernel's units (nanoseconds, pages,
// task state bits); user space derives what /proc shows from them (the
// user/system split of cputime_adjust, clock ticks, the state letter).

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PF_KTHREAD 0x00200000

// NR_MM_COUNTERS entries of mm->rss_stat: MM_FILEPAGES, MM_ANONPAGES,
// MM_SWAPENTS, MM_SHMEMPAGES. RSS (get_mm_rss) is all but the swap entries.
#define MM_FILEPAGES 0
#define MM_ANONPAGES 1
#define MM_SHMEMPAGES 3

// Threads a leader walks at most (bpf_loop's limit is 1 << 23).
#define MAX_THREADS (1 << 20)

// record is one process. Keep in step with Record in procstat.go.
struct record {
	__u32 tgid;
	__u32 ppid;
	__u64 start_boottime; // ns since boot, suspend included
	__u64 runtime;        // ns on CPU: live threads + threads gone
	__u64 utime;          // tick-sampled user time, ns
	__u64 stime;          // tick-sampled system time, ns
	__u64 prev_utime;     // signal->prev_cputime: the split /proc last showed
	__u64 prev_stime;
	__s64 rss_pages;
	__u64 cgroup_id;      // the leader's cgroup v2 (kernfs node id)
	__u64 cpu_cgroup_id;  // its cgroup of the cpu controller (v1 or v2)
	__s32 nr_threads;
	__u32 state;          // leader's __state
	__u32 exit_state;     // leader's exit_state
	__u32 flags;          // leader's PF_* flags
	__s32 nr_cpus_allowed; // the leader's affinity mask weight
	__u32 pad;
	char comm[16];
};

// Keeps struct record in the object's BTF for bpf2go's -type.
const struct record *unused_record __attribute__((unused));

// Before 6.2 mm->rss_stat was a struct of atomic counters.
struct mm_rss_stat___old {
	atomic_long_t count[4];
} __attribute__((preserve_access_index));

struct mm_struct___old {
	struct mm_rss_stat___old rss_stat;
} __attribute__((preserve_access_index));

// Before 5.14 the task state field was called state.
struct task_struct___old {
	long state;
} __attribute__((preserve_access_index));

struct walk {
	struct list_head *head;
	struct list_head *pos;
	__u64 runtime, utime, stime;
};

static long walk_thread(__u64 i, struct walk *w)
{
	struct list_head *pos = w->pos; // a local struct: no CO-RE access
	struct list_head *next = BPF_CORE_READ(pos, next);

	if (!next || next == w->head)
		return 1;
	struct task_struct *t = (void *)next - bpf_core_field_offset(struct task_struct, thread_node);
	w->runtime += BPF_CORE_READ(t, se.sum_exec_runtime);
	w->utime += BPF_CORE_READ(t, utime);
	w->stime += BPF_CORE_READ(t, stime);
	w->pos = next;
	return 0;
}

static __always_inline __s64 rss_counter(struct mm_struct *mm, int i)
{
	__s64 v;

	if (bpf_core_type_exists(struct mm_rss_stat___old)) {
		struct mm_struct___old *old = (void *)mm;
		v = BPF_CORE_READ(old, rss_stat.count[i].counter);
	} else {
		// What get_mm_counter reads (percpu_counter_read_positive):
		// the shared count, without the per-CPU deltas.
		v = mm->rss_stat[i].count;
	}
	return v < 0 ? 0 : v;
}

SEC("iter/task")
int procstat(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct record r = {};

	if (!task)
		return 0;
	// The task and what it points to are BTF pointers: plain loads (which
	// the verifier makes fault-safe) instead of a helper call per field.
	r.tgid = task->tgid;
	r.flags = task->flags;
	if (task->pid != r.tgid || (r.flags & PF_KTHREAD))
		return 0;

	struct signal_struct *sig = task->signal;
	if (!sig)
		return 0;
	r.ppid = task->real_parent->tgid;
	r.start_boottime = task->start_boottime;
	if (bpf_core_field_exists(task->__state)) {
		r.state = task->__state;
	} else {
		struct task_struct___old *old = (void *)task;
		r.state = BPF_CORE_READ(old, state);
	}
	r.exit_state = task->exit_state;
	r.nr_cpus_allowed = task->nr_cpus_allowed;
	struct css_set *cgroups = task->cgroups;
	r.cgroup_id = cgroups->dfl_cgrp->kn->id;
	if (bpf_core_enum_value_exists(enum cgroup_subsys_id, cpu_cgrp_id)) {
		int cpu = bpf_core_enum_value(enum cgroup_subsys_id, cpu_cgrp_id);

		if (cpu >= 0 && cpu < CGROUP_SUBSYS_COUNT) {
			struct cgroup_subsys_state *css = cgroups->subsys[cpu];

			if (css)
				r.cpu_cgroup_id = css->cgroup->kn->id;
		}
	}
	r.nr_threads = sig->nr_threads;
	bpf_probe_read_kernel(&r.comm, sizeof(r.comm), task->comm);
	r.prev_utime = sig->prev_cputime.utime;
	r.prev_stime = sig->prev_cputime.stime;

	struct mm_struct *mm = task->mm;
	if (mm)
		r.rss_pages = rss_counter(mm, MM_FILEPAGES) + rss_counter(mm, MM_ANONPAGES) +
			      rss_counter(mm, MM_SHMEMPAGES);

	// A thread that exits moves its time from its task to signal's totals
	// inside a stats_lock write section: read again if one ran meanwhile.
	for (int try = 0; try < 4; try++) {
		unsigned seq0 = sig->stats_lock.seqcount.seqcount.sequence;

		r.runtime = sig->sum_sched_runtime;
		r.utime = sig->utime;
		r.stime = sig->stime;
		if (r.nr_threads == 1) {
			// Most processes: the leader is the only thread.
			r.runtime += task->se.sum_exec_runtime;
			r.utime += task->utime;
			r.stime += task->stime;
		} else {
			struct walk w = {};

			w.head = (void *)sig + bpf_core_field_offset(struct signal_struct, thread_head);
			w.pos = w.head;
			bpf_loop(MAX_THREADS, walk_thread, &w, 0);
			r.runtime += w.runtime;
			r.utime += w.utime;
			r.stime += w.stime;
		}
		unsigned seq1 = sig->stats_lock.seqcount.seqcount.sequence;
		if (!(seq0 & 1) && seq0 == seq1)
			break;
		r.nr_threads = sig->nr_threads;
	}
	bpf_seq_write(seq, &r, sizeof(r));
	return 0;
}
