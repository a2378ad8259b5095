// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// CPython frame walker, shared by the samplers. At sample time it finds the
// PyThreadState of the current thread and follows the interpreter's frame
// chain, recording per frame the code object's address and the instruction
// offset; user space (internal/profiler/cpython) turns those into names,
// files and lines by reading the code objects from the process's memory.
//
// Per-process configuration (struct py_config: the address of _PyRuntime
// and the struct offsets of the process's CPython version) is written into
// py_procs by user space when a task starts on a Python process; processes
// without an entry are not walked.
//
// The thread state of the current thread is the one whose thread_id
// (pthread_self(), the thread pointer) equals the task's fsbase: found by
// walking the main interpreter's thread list (bounded) once per thread and
// cached per tid in py_tstates, re-checked at every use. That works for
// every version from 3.8 (no thread-local lookup needed), for threads that
// do not hold the GIL (off-CPU: blocked in sleep or I/O), and across PID
// namespaces. x86-64 only (fsbase); on arm64 the walker finds no thread.
//
// Stacks are stored by content hash in py_stacks (an LRU: no clearing by
// user space, and a stack referenced by a count rarely ages out between two
// drains); the sample carries the hash (0: no Python stack).
//
// Include after vmlinux.h and bpf_helpers.h; needs bpf_core_read.h.

#ifndef CONTPROF_CPYTHON_H
#define CONTPROF_CPYTHON_H

#include <bpf/bpf_core_read.h>

#define PY_MAX_FRAMES 64          // recorded frames per stack
#define PY_MAX_THREADS 64         // thread states looked at per lookup
#define PY_NONE 0xffffffff        // offset of a field this version lacks

// py_stack.flags
#define PY_STACK_TRUNCATED 1      // more frames than PY_MAX_FRAMES
#define PY_STACK_READ_FAILED 2    // a read failed: the stack may be partial

enum py_stat_index {
	PY_STAT_WALKS = 0,      // samples of Python processes
	PY_STAT_NO_TSTATE,      // no thread state for the thread (not a Python thread)
	PY_STAT_EMPTY,          // thread state without frames
	PY_STAT_TRUNCATED,      // more frames than PY_MAX_FRAMES
	PY_STAT_READ_FAILED,    // a user memory read failed mid-walk
	PY_STAT_STACK_LOST,     // py_stacks update failed
	PY_STAT_MAX,
};

struct py_config {
	__u64 runtime;            // address of _PyRuntime in the process
	__u32 version;            // PY_VERSION_HEX & 0xffff0000 (for user space)
	__u32 runtime_interp_head;
	__u32 interp_tstate_head;
	__u32 thread_next;
	__u32 thread_id;
	__u32 thread_frame;       // frame (<3.11), cframe (3.11/3.12), current_frame (3.13)
	__u32 cframe_current;     // _PyCFrame.current_frame, PY_NONE without cframe
	__u32 frame_code;
	__u32 frame_back;
	__u32 frame_instr;        // f_lasti (<3.11), prev_instr (3.11/3.12), instr_ptr (3.13)
	__u32 frame_flag;         // is_entry (3.11), owner (3.12+), PY_NONE before
	__u32 pad;
};

// Raw values; user space interprets them per version.
struct py_frame {
	__u64 code;  // PyCodeObject * (f_code / f_executable)
	__u64 instr; // f_lasti (low 32 bits) or the instruction pointer
	__u8 flag;   // is_entry (3.11) or owner (3.12+)
	__u8 pad[7];
};

struct py_stack {
	__u32 len;
	__u32 flags; // PY_STACK_*
	struct py_frame frames[PY_MAX_FRAMES];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); // tgid, in the pid namespace of the loader
	__type(value, struct py_config);
} py_procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);   // kernel thread id
	__type(value, __u64); // PyThreadState *
} py_tstates SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);   // content hash, never 0
	__type(value, struct py_stack);
} py_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct py_stack);
} py_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PY_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} py_stats SEC(".maps");

static __always_inline void py_stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&py_stats, &idx);
	if (v)
		*v += 1;
}

static __always_inline __u64 py_read_ptr(__u64 addr)
{
	__u64 v = 0;
	if (bpf_probe_read_user(&v, sizeof(v), (void *)addr))
		return 0;
	return v;
}

// py_thread_state finds the PyThreadState of the current thread.
static __always_inline __u64 py_thread_state(struct py_config *c, __u32 tid)
{
#if defined(__TARGET_ARCH_x86)
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 fsbase = BPF_CORE_READ(task, thread.fsbase);
	if (!fsbase)
		return 0;
#else
	// arm64: pthread_self() sits sizeof(struct pthread) below the thread
	// pointer, a size that depends on the libc build: not walked (user
	// space does not configure the walker there).
	__u64 fsbase = 0;
	return 0;
#endif

	__u64 *cached = bpf_map_lookup_elem(&py_tstates, &tid);
	if (cached && *cached && py_read_ptr(*cached + c->thread_id) == fsbase)
		return *cached;

	__u64 interp = py_read_ptr(c->runtime + c->runtime_interp_head);
	if (!interp)
		return 0;
	__u64 ts = py_read_ptr(interp + c->interp_tstate_head);
	for (int i = 0; i < PY_MAX_THREADS && ts; i++) {
		if (py_read_ptr(ts + c->thread_id) == fsbase) {
			bpf_map_update_elem(&py_tstates, &tid, &ts, BPF_ANY);
			return ts;
		}
		ts = py_read_ptr(ts + c->thread_next);
	}
	return 0;
}

// py_walk fills st with the current thread's Python frames, leaf first,
// as raw values: the loop body has one branch, so that the verifier's
// cost stays linear in PY_MAX_FRAMES. User space interprets them (skips
// shim frames, derives entry marks and instruction offsets).
static __always_inline void py_walk(struct py_config *c, __u64 tstate, struct py_stack *st)
{
	__u64 frame = py_read_ptr(tstate + c->thread_frame);
	if (frame && c->cframe_current != PY_NONE)
		frame = py_read_ptr(frame + c->cframe_current);

	__u32 n = 0;
	for (int i = 0; i < PY_MAX_FRAMES; i++) {
		if (!frame)
			break;
		struct py_frame *f = &st->frames[i];
		__u64 cur = frame;
		f->flag = 0;
		if (c->frame_flag != PY_NONE)
			bpf_probe_read_user(&f->flag, 1, (void *)(cur + c->frame_flag));
		if (bpf_probe_read_user(&f->code, sizeof(f->code), (void *)(cur + c->frame_code)) ||
		    bpf_probe_read_user(&f->instr, sizeof(f->instr), (void *)(cur + c->frame_instr)) ||
		    bpf_probe_read_user(&frame, sizeof(frame), (void *)(cur + c->frame_back))) {
			st->flags |= PY_STACK_READ_FAILED;
			break;
		}
		n = i + 1;
	}
	if (frame && n == PY_MAX_FRAMES)
		st->flags |= PY_STACK_TRUNCATED;
	st->len = n;
}

static __always_inline __u64 py_hash(struct py_stack *st)
{
	__u64 h = 0xcbf29ce484222325ULL ^ st->flags;
	for (int i = 0; i < PY_MAX_FRAMES; i++) {
		if (i >= st->len)
			break;
		struct py_frame *f = &st->frames[i];
		h = (h ^ f->code) * 0x100000001b3ULL;
		h = (h ^ f->instr) * 0x100000001b3ULL;
		h = (h ^ f->flag) * 0x100000001b3ULL;
	}
	h ^= h >> 29;
	return h ? h : 1;
}

// py_record walks the Python stack of the current thread of process tgid
// (tid: its kernel thread id), stores it in py_stacks and returns its id;
// 0 when the process is not a configured Python process or the thread has
// no Python frames.
//
// A global (non-inlined) function: the verifier checks it once, not at
// every call site and not with each caller's state, which keeps the
// samplers' load time (done when a task starts) short.
__attribute__((noinline)) __u64 py_record(__u32 tgid, __u32 tid)
{
	struct py_config *c = bpf_map_lookup_elem(&py_procs, &tgid);
	if (!c)
		return 0;
	py_stat_inc(PY_STAT_WALKS);
	__u64 ts = py_thread_state(c, tid);
	if (!ts) {
		py_stat_inc(PY_STAT_NO_TSTATE);
		return 0;
	}
	__u32 zero = 0;
	struct py_stack *st = bpf_map_lookup_elem(&py_scratch, &zero);
	if (!st)
		return 0;
	st->len = 0;
	st->flags = 0;
	py_walk(c, ts, st);
	if (st->len == 0) {
		py_stat_inc(PY_STAT_EMPTY);
		return 0;
	}
	if (st->flags & PY_STACK_TRUNCATED)
		py_stat_inc(PY_STAT_TRUNCATED);
	if (st->flags & PY_STACK_READ_FAILED)
		py_stat_inc(PY_STAT_READ_FAILED);
	__u64 id = py_hash(st);
	if (!bpf_map_lookup_elem(&py_stacks, &id) &&
	    bpf_map_update_elem(&py_stacks, &id, st, BPF_ANY))
		py_stat_inc(PY_STAT_STACK_LOST);
	return id;
}

#endif // CONTPROF_CPYTHON_H
