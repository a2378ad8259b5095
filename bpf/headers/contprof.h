// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// Helpers every contprof BPF program shares: which process the current task
// belongs to (in the loader's PID namespace), the in-kernel PID filter, the
// per-CPU counters user space reads as stats, and a count update that is safe
// when several CPUs insert the same key. Include after vmlinux.h and
// <bpf/bpf_helpers.h>.
//
// The names (pidns_dev, pidns_ino, target_pids, stats) are what the Go
// loaders set and read; keep them.
#ifndef CONTPROF_H
#define CONTPROF_H

#define EFAULT 14
#define EEXIST 17

// Frames a stack map value holds (the kernel's PERF_MAX_STACK_DEPTH).
#define MAX_STACK_DEPTH 127

// Set when the loader runs in a non-initial pid namespace (a container), so
// that target PIDs are compared in the namespace where they were found.
volatile const __u64 pidns_dev = 0;
volatile const __u64 pidns_ino = 0;

// current_tgid is the process of the current task as the loader sees it, 0
// for tasks outside the loader's namespace (they cannot be targets).
static __always_inline __u32 current_tgid(void)
{
	if (pidns_ino) {
		struct bpf_pidns_info ns = {};
		if (bpf_get_ns_current_pid_tgid(pidns_dev, pidns_ino, &ns, sizeof(ns)))
			return 0;
		return ns.tgid;
	}
	return bpf_get_current_pid_tgid() >> 32;
}

// PID_FILTER_BITMAP declares the PID filter as a bitmap indexed by tgid:
// bit tgid%64 of word tgid/64. An array lookup is inlined by the verifier,
// so the test every event pays (every context switch, every system call)
// stays a couple of loads. User space sizes it from pid_max.
#define PID_FILTER_BITMAP(words)                                        \
	struct {                                                        \
		__uint(type, BPF_MAP_TYPE_ARRAY);                       \
		__uint(max_entries, words);                             \
		__type(key, __u32);                                     \
		__type(value, __u64);                                   \
	} target_pids SEC(".maps");                                     \
									\
	static __always_inline int is_target(__u32 tgid)                \
	{                                                               \
		__u32 word = tgid >> 6;                                 \
		__u64 *bits = bpf_map_lookup_elem(&target_pids, &word); \
									\
		return tgid && bits && ((*bits >> (tgid & 63)) & 1);    \
	}

// PID_FILTER_HASH declares the PID filter as a set of tgids, for programs
// that run rarely enough that its size matters more than its speed.
#define PID_FILTER_HASH(entries)                                        \
	struct {                                                        \
		__uint(type, BPF_MAP_TYPE_HASH);                        \
		__uint(max_entries, entries);                           \
		__type(key, __u32);                                     \
		__type(value, __u8);                                    \
	} target_pids SEC(".maps");                                     \
									\
	static __always_inline int is_target(__u32 tgid)                \
	{                                                               \
		return tgid && bpf_map_lookup_elem(&target_pids, &tgid); \
	}

// STATS declares n per-CPU counters and stat_inc. Per-CPU: no atomics.
#define STATS(n)                                                        \
	struct {                                                        \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                \
		__uint(max_entries, n);                                 \
		__type(key, __u32);                                     \
		__type(value, __u64);                                   \
	} stats SEC(".maps");                                           \
									\
	static __always_inline void stat_inc(__u32 idx)                 \
	{                                                               \
		__u64 *v = bpf_map_lookup_elem(&stats, &idx);           \
		if (v)                                                  \
			*v += 1;                                        \
	}

// lookup_or_init returns the value of key in a hash map, inserting init
// first if the key is absent; NULL when the map is full. Another CPU may
// insert the same key between the lookup and the insert: its value is used
// then. Callers add to the value atomically.
static __always_inline void *lookup_or_init(void *map, const void *key, const void *init)
{
	void *v = bpf_map_lookup_elem(map, key);
	if (v)
		return v;
	long err = bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	if (err && err != -EEXIST)
		return NULL;
	return bpf_map_lookup_elem(map, key);
}

// EVENT_RING declares the events ring buffer (resized by user space) and
// wakeup_bytes: the reader is woken only once this much data waits (0: on
// every event); it then polls on a timer, which keeps the cost of a wakeup
// off the traced events when they come at a high rate. Submit with
// ring_submit.
#define EVENT_RING(bytes)                                               \
	struct {                                                        \
		__uint(type, BPF_MAP_TYPE_RINGBUF);                     \
		__uint(max_entries, bytes);                             \
	} events SEC(".maps");                                          \
									\
	volatile const __u64 wakeup_bytes = 0;                          \
									\
	static __always_inline void ring_submit(void *e)                \
	{                                                               \
		__u64 flags = 0;                                        \
		if (wakeup_bytes &&                                     \
		    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) < wakeup_bytes) \
			flags = BPF_RB_NO_WAKEUP;                       \
		bpf_ringbuf_submit(e, flags);                           \
	}

// Double-buffered stacks and counts (the on- and off-CPU profilers): the
// program writes the pair active_buf names; user space flips active_buf,
// waits for programs in flight, then drains and clears the other pair.
// Clearing a stack map every interval keeps it sparse, so hash collisions
// (which lose a stack) stay rare. Sizes are set by user space at load.
#define STACK_MAP(name)                                                 \
	struct {                                                        \
		__uint(type, BPF_MAP_TYPE_STACK_TRACE);                 \
		__uint(max_entries, 8192);                              \
		__uint(key_size, sizeof(__u32));                        \
		__uint(value_size, MAX_STACK_DEPTH * sizeof(__u64));    \
	} name SEC(".maps")

#define COUNT_MAP(name, key_type, value_type)                           \
	struct {                                                        \
		__uint(type, BPF_MAP_TYPE_HASH);                        \
		__uint(max_entries, 8192);                              \
		__type(key, key_type);                                  \
		__type(value, value_type);                              \
	} name SEC(".maps")

#define DOUBLE_BUFFER(key_type, value_type)                             \
	STACK_MAP(stacks_0);                                            \
	STACK_MAP(stacks_1);                                            \
	COUNT_MAP(counts_0, key_type, value_type);                      \
	COUNT_MAP(counts_1, key_type, value_type);                      \
	/* Which pair the program writes to; flipped by user space. */ \
	volatile __u32 active_buf = 0

#endif // CONTPROF_H
