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
// A sample's stacks are produced in the source's Collect, which builds a
// Stack (addresses, leaf first) for each count. Today both sources read
// stack ids recorded by bpf_get_stackid through Buffers.Stack; an unwinder
// that produces user stacks differently (in-kernel DWARF/frame tables, a
// copy of the user stack unwound here) builds Stack.User itself and passes
// it to Collection.Add: nothing else changes. Stacks become frames in
// Batch.Profile through the Symbolizer interface (today
// *symbolize.Symbolizer: ELF symbols, kallsyms); interpreters and JITs hook
// in there, per process, with the PID and the raw addresses.
package stackprof
