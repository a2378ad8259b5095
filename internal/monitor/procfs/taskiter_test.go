//go:build linux

package procfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contprof/contprof/bpf/procstat"
)

// The task iterator must report what /proc/PID/stat shows for the same
// processes: these tests read both around each other and compare.

// requireRoot skips without root, or fails with CONTPROF_REQUIRE_EBPF=1
// (proftest.RequireEBPF's convention; proftest imports this package).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CONTPROF_REQUIRE_EBPF") == "1" {
		t.Fatal("CONTPROF_REQUIRE_EBPF=1 but not running as root: the BPF task iterator needs root (or CAP_BPF+CAP_PERFMON)")
	}
	t.Skip("not root: the BPF task iterator needs root (or CAP_BPF+CAP_PERFMON); set CONTPROF_REQUIRE_EBPF=1 to make this fatal")
}

// openIter opens the task iterator (see requireRoot).
func openIter(t *testing.T) *procstat.Iterator {
	t.Helper()
	requireRoot(t)
	it, err := procstat.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { it.Close() })
	return it
}

// records runs the iterator once and indexes its records by PID.
func records(t *testing.T, it *procstat.Iterator) map[int32]procstat.Record {
	t.Helper()
	b, err := it.Read(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := map[int32]procstat.Record{}
	for _, r := range procstat.Records(b) {
		if _, dup := m[int32(r.Tgid)]; dup {
			t.Fatalf("pid %d reported twice", r.Tgid)
		}
		m[int32(r.Tgid)] = r
	}
	return m
}

// procStat reads /proc/PID/stat; ok is false when the process is gone.
func procStat(t *testing.T, pid int32) (st statFields, ok bool) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, false
	}
	if err := parseStat(b, &st); err != nil {
		t.Fatalf("pid %d: %v: %q", pid, err, b)
	}
	st.comm = append([]byte(nil), st.comm...)
	return st, true
}

const tickNs = 1e9 / TicksPerSecond

// TestIteratorMatchesProc compares every field the scanner uses for
// processes in known states: sleeping, 17 threads, stopped, a zombie, a
// zombie leader with a live thread, and one burning CPU.
func TestIteratorMatchesProc(t *testing.T) {
	it := openIter(t)
	sleeper := startChild(t, sleepCmd(), false)
	threads := startChild(t, exec.Command(buildThreadsProgram(t)), true)
	stopped := startChild(t, sleepCmd(), false)
	if err := stopped.cmd.Process.Signal(unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	zombie := startChild(t, sleepCmd(), false)
	zombie.cmd.Process.Signal(unix.SIGKILL) // not waited for
	leader := startChild(t, exec.Command(buildProgram(t, "zombieleader.c", "zombieleader")), true)
	busy := startChild(t, helper("busy"), true)

	want := map[int32]struct {
		state   byte
		threads int64
	}{
		sleeper.pid: {'S', 1}, threads.pid: {'S', 17}, stopped.pid: {'T', 1},
		zombie.pid: {'Z', 1}, leader.pid: {'Z', 2},
	}
	// Wait for the states to settle (SIGSTOP and SIGKILL are asynchronous).
	for pid, w := range want {
		for i := 0; ; i++ {
			st, _ := procStat(t, pid)
			if st.state == w.state {
				break
			}
			if i == 200 {
				t.Fatalf("pid %d: state %c, want %c", pid, st.state, w.state)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond) // the busy helper gathers CPU time

	for round := range 5 {
		before := map[int32]statFields{}
		for _, pid := range []int32{sleeper.pid, threads.pid, stopped.pid, zombie.pid, leader.pid, busy.pid} {
			st, ok := procStat(t, pid)
			if !ok {
				t.Fatalf("pid %d gone", pid)
			}
			before[pid] = st
		}
		recs := records(t, it)
		for pid, pst := range before {
			r, ok := recs[pid]
			if !ok {
				t.Fatalf("round %d: pid %d (%s, %c) not reported", round, pid, pst.comm, pst.state)
			}
			ast, _ := procStat(t, pid)
			name := fmt.Sprintf("round %d pid %d (%s)", round, pid, pst.comm)
			if got := r.StartBoottime / tickNs; got != pst.startTicks {
				t.Errorf("%s: start %d ticks, /proc %d", name, got, pst.startTicks)
			}
			if int32(r.Ppid) != pst.ppid {
				t.Errorf("%s: ppid %d, /proc %d", name, r.Ppid, pst.ppid)
			}
			if got := string(commBytes(&r.Comm)); got != string(pst.comm) {
				t.Errorf("%s: comm %q, /proc %q", name, got, pst.comm)
			}
			if int64(r.NrThreads) != pst.numThreads {
				t.Errorf("%s: %d threads, /proc %d", name, r.NrThreads, pst.numThreads)
			}
			if r.Flags&pfKthread != 0 {
				t.Errorf("%s: flagged as a kernel thread", name)
			}
			lo, hi := min(pst.rssPages, ast.rssPages), max(pst.rssPages, ast.rssPages)
			if r.RssPages < lo || r.RssPages > hi {
				t.Errorf("%s: RSS %d pages, /proc %d then %d", name, r.RssPages, pst.rssPages, ast.rssPages)
			}
			// CPU time: /proc shows each part truncated to ticks and the
			// iterator leaves out the running slice of the current tick
			// (at most a scheduler tick, less than a USER_HZ tick).
			var split cpuSplit = cpuSplit{user: r.PrevUtime, system: r.PrevStime}
			u, s := split.adjust(r.Runtime, r.Utime, r.Stime)
			cpu := u + s
			if cpu+tickNs < pst.utimeNs+pst.stimeNs || cpu > ast.utimeNs+ast.stimeNs+2*tickNs {
				t.Errorf("%s: CPU %d ns, /proc %d then %d ns", name, cpu, pst.utimeNs+pst.stimeNs, ast.utimeNs+ast.stimeNs)
			}
			if w, ok := want[pid]; ok {
				// Idle: exactly /proc's split, in whole ticks.
				if u/tickNs*tickNs != pst.utimeNs || s/tickNs*tickNs != pst.stimeNs {
					t.Errorf("%s: user %d system %d ns, /proc %d %d", name, u, s, pst.utimeNs, pst.stimeNs)
				}
				if got := stateLetter(r.State, r.ExitState); got != w.state || got != pst.state {
					t.Errorf("%s: state %c, /proc %c, want %c", name, got, pst.state, w.state)
				}
				if int64(r.NrThreads) != w.threads {
					t.Errorf("%s: %d threads, want %d", name, r.NrThreads, w.threads)
				}
			}
		}
		if t.Failed() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	if busyNs := records(t, it)[busy.pid].Runtime; busyNs < 100e6 {
		t.Fatalf("busy helper used %d ns, want >= 100 ms: the comparison saw no CPU time", busyNs)
	}
}

// TestIteratorCoversProc: every user process /proc lists before and after
// an iterator read (same start time) is in it; no kernel thread is; and
// PID 2 (kthreadd) never is.
func TestIteratorCoversProc(t *testing.T) {
	it := openIter(t)
	list := func() map[int32]statFields {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			t.Fatal(err)
		}
		m := map[int32]statFields{}
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if st, ok := procStat(t, int32(pid)); ok {
				m[int32(pid)] = st
			}
		}
		return m
	}
	before := list()
	recs := records(t, it)
	after := list()
	users, kernel := 0, 0
	for pid, b := range before {
		a, ok := after[pid]
		if !ok || a.startTicks != b.startTicks {
			continue // exited or replaced meanwhile
		}
		r, reported := recs[pid]
		if b.flags&pfKthread != 0 {
			kernel++
			if reported {
				t.Errorf("kernel thread %d (%s) reported", pid, b.comm)
			}
			continue
		}
		users++
		if !reported && hidden(pid) {
			// This machine's kernel (a Firecracker guest) hides its init,
			// the VM agent, from root's introspection: ptrace-style access
			// to its /proc entries is denied, and task iterators skip it.
			t.Logf("pid %d (%s) hidden from introspection: not reported", pid, b.comm)
			continue
		}
		if !reported {
			t.Errorf("pid %d (%s) not reported", pid, b.comm)
		} else if r.StartBoottime/tickNs != b.startTicks {
			t.Errorf("pid %d: start %d ticks, /proc %d", pid, r.StartBoottime/tickNs, b.startTicks)
		}
	}
	if _, ok := recs[2]; ok {
		t.Error("kthreadd (pid 2) reported")
	}
	if users == 0 || kernel == 0 {
		t.Fatalf("%d user processes and %d kernel threads compared: the test saw nothing", users, kernel)
	}
	t.Logf("%d user processes, %d kernel threads compared; %d records", users, kernel, len(recs))
}

// hidden reports a process root may not inspect (reading its executable
// link is denied).
func hidden(pid int32) bool {
	_, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return os.Geteuid() == 0 && errors.Is(err, os.ErrPermission)
}

// TestIteratorThreadExits: a process whose threads keep exiting while
// they burn CPU moves time from live threads to the process's total all the
// time. Read again and again, its CPU time never goes back and never runs
// ahead of /proc read just after: an exiting thread is counted once.
func TestIteratorThreadExits(t *testing.T) {
	it := openIter(t)
	c := startChild(t, helper("thread-churn"), true)
	var split cpuSplit
	var last uint64
	deadline := time.Now().Add(2 * time.Second)
	reads := 0
	for time.Now().Before(deadline) {
		r, ok := records(t, it)[c.pid]
		if !ok {
			t.Fatal("churning process not reported")
		}
		if r.Runtime < last {
			t.Fatalf("read %d: CPU time went back from %d to %d ns", reads, last, r.Runtime)
		}
		last = r.Runtime
		u, s := split.adjust(r.Runtime, r.Utime, r.Stime)
		after, _ := procStat(t, c.pid)
		if u+s > after.utimeNs+after.stimeNs+2*tickNs {
			t.Fatalf("read %d: CPU %d ns, ahead of /proc's %d ns read after it", reads, u+s, after.utimeNs+after.stimeNs)
		}
		reads++
	}
	if last < 100e6 {
		t.Fatalf("the helper used %d ns of CPU: nothing was compared", last)
	}
	t.Logf("%d reads, %d ms of CPU", reads, last/1e6)
}

// copySamples keeps a snapshot's samples past the next Scan.
func copySamples(snap Snapshot) Snapshot {
	snap.Samples = append([]Sample(nil), snap.Samples...)
	return snap
}

// TestScannerSourcesAgree scans the same processes with both sources.
func TestScannerSourcesAgree(t *testing.T) {
	requireRoot(t)
	threads := startChild(t, exec.Command(buildThreadsProgram(t)), true)
	sleeper := startChild(t, sleepCmd(), false)
	cfg := Config{Include: Filter{PIDs: []int{int(threads.pid), int(sleeper.pid)}}}
	cfg.Source = SourceProc
	ps := newScanner(t, cfg)
	cfg.Source = SourceBPF
	bs := newScanner(t, cfg)
	if bs.Source() != SourceBPF || ps.Source() != SourceProc {
		t.Fatalf("sources %s and %s", ps.Source(), bs.Source())
	}
	waitResident(t, sleeper.pid)
	// /proc around the iterator: what may change in between (RSS, CPU
	// time) must lie between the two /proc readings.
	pa, ba := scan(t, ps), scan(t, bs)
	pa = copySamples(pa)
	pz := scan(t, ps)
	for _, pid := range []int32{threads.pid, sleeper.pid} {
		p, b, z := find(pa, pid), find(ba, pid), find(pz, pid)
		if p == nil || b == nil || z == nil {
			t.Fatalf("pid %d: proc %v, bpf %v, proc %v", pid, p != nil, b != nil, z != nil)
		}
		pi, bi := *p.Info, *b.Info
		if pi != bi {
			t.Errorf("pid %d: infos differ:\n proc %+v\n bpf  %+v", pid, pi, bi)
		}
		if p.Threads != b.Threads || p.State != b.State || p.CPUs != b.CPUs ||
			b.RSSBytes < min(p.RSSBytes, z.RSSBytes) || b.RSSBytes > max(p.RSSBytes, z.RSSBytes) {
			t.Errorf("pid %d: samples differ:\n proc %+v\n bpf  %+v\n proc %+v", pid, *p, *b, *z)
		}
		if b.CPUSeconds() < p.CPUSeconds() || b.CPUSeconds() >= z.CPUSeconds()+2.0/TicksPerSecond {
			t.Errorf("pid %d: CPU %.4f s, /proc %.4f then %.4f s", pid, b.CPUSeconds(), p.CPUSeconds(), z.CPUSeconds())
		}
	}
	if !strings.Contains(fmt.Sprint(SourceBPF, SourceProc, SourceAuto), "bpf proc auto") {
		t.Errorf("source names %v", []Source{SourceBPF, SourceProc, SourceAuto})
	}
}

// TestIteratorRefreshOnChange: with the iterator, a tracked process that is
// re-pinned or moved to another cgroup shows its new CPUs at the next scan,
// without waiting for CPURefresh.
func TestIteratorRefreshOnChange(t *testing.T) {
	requireRoot(t)
	c := startChild(t, sleepCmd(), false)
	s := newScanner(t, Config{Source: SourceBPF, CPURefresh: time.Hour, Include: Filter{PIDs: []int{int(c.pid)}}})
	before := find(scan(t, s), c.pid)
	if before == nil {
		t.Fatal("child not found")
	}
	if before.CPUs < 2 {
		t.Skipf("the child may use %v CPUs: pinning it to one changes nothing", before.CPUs)
	}
	var one unix.CPUSet
	one.Set(0)
	if err := unix.SchedSetaffinity(int(c.pid), &one); err != nil {
		t.Fatal(err)
	}
	if smp := find(scan(t, s), c.pid); smp == nil || smp.CPUs != 1 {
		t.Fatalf("after pinning to one CPU: %+v", smp)
	}
	var all unix.CPUSet
	for i := range int(before.CPUs) {
		all.Set(i)
	}
	if err := unix.SchedSetaffinity(int(c.pid), &all); err != nil {
		t.Fatal(err)
	}
	if smp := find(scan(t, s), c.pid); smp == nil || smp.CPUs != before.CPUs {
		t.Fatalf("after unpinning: %+v", smp)
	}
	moveToQuotaCgroup(t, s, c, 50000, 100000)
	if smp := find(scan(t, s), c.pid); smp == nil || smp.CPUs != 0.5 {
		t.Fatalf("after a move to a cgroup with a quota of 0.5 CPUs: %+v", smp)
	}
}
