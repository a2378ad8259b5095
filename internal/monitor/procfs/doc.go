// Package procfs discovers processes and samples their per-interval metrics
// straight from /proc, cheaply enough to run every second on a busy host.
//
// A Scanner keeps what never changes for a process identity (executable,
// command line, owner, service and container attributes) in an immutable
// *Info, read once. A steady-state Scan gets the per-interval figures (CPU
// times, threads, RSS, state, parent) of every process from one of two
// sources (Config.Source):
//
//   - SourceBPF: one read of a BPF task iterator (bpf/procstat) returns a
//     fixed-size record per user process, in PID order; the kernel does not
//     format text or resolve a path per process. /proc is read only to
//     discover a process (executable, command line, environment, cgroup).
//     The user/system split is computed from the precise run time and the
//     tick samples as the kernel's cputime_adjust does for /proc, starting
//     from the split /proc last showed, so figures agree to the tick (and
//     have nanosecond resolution). It needs root (or CAP_BPF and
//     CAP_PERFMON), a 5.17+ kernel with BTF and the initial PID and time
//     namespaces; SourceAuto falls back to SourceProc otherwise and logs
//     why, once.
//   - SourceProc: Scan lists /proc, then reads only /proc/PID/stat per
//     process, with one pread on a descriptor kept open since discovery,
//     into reused buffers, without allocating.
//
// Both read /proc/loadavg once per scan.
//
// Decisions worth knowing:
//
//   - Identity is PID + start time (ID). A kept stat descriptor is bound to
//     its process, so a reused PID is noticed even within one interval.
//   - Kernel threads (PF_KTHREAD) are never reported; once seen they are
//     not read again while their /proc inode stays the same (re-checked
//     every CPURefresh).
//   - Zombies (state Z with at most one thread) are skipped like exited
//     processes: they use no CPU or memory and have no executable left. A
//     zombie thread-group leader whose other threads still run is kept.
//   - Processes that exit while being read are skipped silently. Permission
//     problems are logged at debug level once per process identity, plus
//     one warning per Scanner.
//   - An exec (seen as a change of comm) keeps the identity and CPU history
//     but re-reads executable, command line, environment and filters.
//   - Utilization is CPU time over the interval divided by the CPUs the
//     process may use: min(affinity mask, cgroup CPU quota (v1 or v2,
//     including ancestors)), re-read every CPURefresh. It is absent on the
//     first sight of a process.
//   - Times are in USER_HZ ticks (TicksPerSecond = 100), so a 1 s interval
//     resolves utilization in steps of 0.01 CPU.
package procfs
