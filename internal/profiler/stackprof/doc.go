// Package stackprof is the runtime every kernel stack profiler of contprof
// shares; on-CPU (internal/profiler/oncpu, a perf_event CPU clock) and
// off-CPU (internal/profiler/offcpu, sched_switch) are two event sources on
// it. It owns:
//
//   - the in-kernel PID filter (the target_pids bitmap of
//     bpf/headers/contprof.h) with reference-counted subscriptions: a
//     process is in the filter while at least one task subscribes to it;
//   - the double-buffered counts and stack maps (Buffers): flip, drain,
//     clear, reading each stack once per drain;
//   - per-subscription accumulation of samples, Drain into a Batch, and the
//     Batch → profiles.Profile path;
//   - lazy load/unload of the BPF objects (Manager) and the task life cycle
//     on internal/profiler/taskrun (StartTask).
//
// An event source loads and attaches its programs with the Setup the
// runtime computes (PID filter size, PID namespace), then hands a Kernel to
// New. Its Kernel.Collect turns the kernel's counts into Add calls.
//
// # Where a stack comes from and becomes frames (the unwinder seam)
//
// A sample's stacks are produced by the source as a Stack (addresses, leaf
// first) and handed to Collection.Add in the source's Collect. Two paths
// exist today. With frame pointers only, the kernel records stack ids
// (bpf_get_stackid) that Collect reads through Buffers.Stack. By default,
// the programs send a snapshot of the user registers and stack (ustack.h)
// to a ring buffer; an Unwinding reads it on its own goroutine, unwinds it
// in user space with the binaries' call frame information
// (internal/profiler/unwind) into Unwinding.Stack, and the source keeps
// the result in a Pending until Collect flushes it. Another unwinder
// (in-kernel tables, an interpreter's frame walk) builds Stack.User its own
// way and joins at the same Add. Stacks become frames in Batch.Profile
// through the Symbolizer interface (today *symbolize.Symbolizer: ELF
// symbols, perf maps, kallsyms); interpreter and JIT frames hook in there,
// per process, with the PID and the raw addresses.
package stackprof
