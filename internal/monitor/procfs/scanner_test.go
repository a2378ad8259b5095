package procfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// measureUtilization scans at t0, t0+1s and t0+2s and returns the mean of
// the two interval utilizations of pid, checking that the first sight has
// none.
func measureUtilization(t *testing.T, s *Scanner, pid int32) (util float64, smp Sample) {
	t.Helper()
	first := find(scan(t, s), pid)
	if first == nil {
		t.Fatalf("pid %d not found", pid)
	}
	if first.HasUtilization {
		t.Fatalf("utilization %v reported on first sight", first.Utilization)
	}
	var sum float64
	for range 2 {
		time.Sleep(time.Second)
		p := find(scan(t, s), pid)
		if p == nil || !p.HasUtilization {
			t.Fatalf("pid %d: no utilization on a later scan: %+v", pid, p)
		}
		sum += p.Utilization
		smp = *p
	}
	return sum / 2, smp
}

func affinityCount(t *testing.T, pid int32) float64 {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(int(pid), &set); err != nil {
		t.Fatal(err)
	}
	return float64(set.Count())
}

func TestCPUUtilizationHalfCore(t *testing.T) {
	t.Run("unpinned", func(t *testing.T) {
		c := startChild(t, helper("busy"), true)
		s := newScanner(t, Config{Include: Filter{PIDs: []int{int(c.pid)}}})
		util, smp := measureUtilization(t, s, c.pid)
		aff := affinityCount(t, c.pid)
		// CPUs is the affinity count unless this machine's cgroup caps it.
		if smp.CPUs <= 0 || smp.CPUs > aff {
			t.Fatalf("CPUs = %v, affinity allows %v", smp.CPUs, aff)
		}
		want := 0.5 / smp.CPUs
		t.Logf("utilization %.3f, CPUs %v, want %.3f ± 0.1", util, smp.CPUs, want)
		if math.Abs(util-want) > 0.1 {
			t.Fatalf("utilization %.3f, want %.3f ± 0.1 (0.5 of one core / %v CPUs)", util, want, smp.CPUs)
		}
		if smp.CPUSeconds() <= 0 || smp.UserSeconds <= 0 {
			t.Fatalf("no CPU time: %+v", smp)
		}
	})
	t.Run("pinned to one CPU", func(t *testing.T) {
		c := startChild(t, helper("busy", "CONTPROF_PIN=1"), true)
		if aff := affinityCount(t, c.pid); aff != 1 {
			t.Fatalf("child affinity %v CPUs, want 1", aff)
		}
		s := newScanner(t, Config{Include: Filter{PIDs: []int{int(c.pid)}}})
		util, smp := measureUtilization(t, s, c.pid)
		t.Logf("utilization %.3f, CPUs %v", util, smp.CPUs)
		if smp.CPUs != 1 {
			t.Fatalf("CPUs = %v, want 1 for a process pinned to one CPU", smp.CPUs)
		}
		if math.Abs(util-0.5) > 0.1 {
			t.Fatalf("utilization %.3f, want 0.5 ± 0.1", util)
		}
	})
	t.Run("cgroup quota of 1.5 CPUs", func(t *testing.T) {
		c := startChild(t, helper("busy"), true)
		s := newScanner(t, Config{Include: Filter{PIDs: []int{int(c.pid)}}})
		moveToQuotaCgroup(t, s, c, 150000, 100000)
		util, smp := measureUtilization(t, s, c.pid)
		wantCPUs := math.Min(affinityCount(t, c.pid), 1.5)
		t.Logf("utilization %.3f, CPUs %v", util, smp.CPUs)
		if smp.CPUs != wantCPUs {
			t.Fatalf("CPUs = %v, want %v (quota 150000/100000)", smp.CPUs, wantCPUs)
		}
		if want := 0.5 / wantCPUs; math.Abs(util-want) > 0.1 {
			t.Fatalf("utilization %.3f, want %.3f ± 0.1", util, want)
		}
	})
}

// moveToQuotaCgroup creates a cgroup with a CPU quota (v1 cpu controller or
// v2 cpu.max, whichever carries the cpu controller here) and moves the
// child into it.
func moveToQuotaCgroup(t *testing.T, s *Scanner, c *child, quota, period int) {
	t.Helper()
	var dir string
	files := map[string]string{}
	switch {
	case s.mounts.v1Point != "":
		dir = filepath.Join(s.mounts.v1Point, fmt.Sprintf("contprof-test-%d", os.Getpid()))
		files["cpu.cfs_period_us"] = strconv.Itoa(period)
		files["cpu.cfs_quota_us"] = strconv.Itoa(quota)
		files["cpu.shares"] = "262144" // like nice -20 in busyHelper, for the group
	case s.mounts.v2Point != "":
		dir = filepath.Join(s.mounts.v2Point, fmt.Sprintf("contprof-test-%d", os.Getpid()))
		files["cpu.max"] = fmt.Sprintf("%d %d", quota, period)
		files["cpu.weight"] = "10000"
	default:
		t.Skip("no cgroup hierarchy with the cpu controller is mounted")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup to test CPU quotas: %v", err)
	}
	t.Cleanup(func() {
		c.stop()
		for i := 0; i < 50; i++ {
			if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("cgroup %s left behind", dir)
	})
	for _, name := range []string{"cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.max", "cpu.shares", "cpu.weight"} {
		if v, ok := files[name]; ok {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0); err != nil {
				t.Skipf("cannot set %s: %v", name, err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(int(c.pid))), 0); err != nil {
		t.Skipf("cannot move the child into %s: %v", dir, err)
	}
}

func TestThreadCount(t *testing.T) {
	prog := buildThreadsProgram(t)
	c := startChild(t, exec.Command(prog), true)
	s := newScanner(t, Config{Include: Filter{PIDs: []int{int(c.pid)}}})
	smp := find(scan(t, s), c.pid)
	if smp == nil {
		t.Fatal("threads17 not found")
	}
	if smp.Threads != 17 {
		t.Fatalf("threads = %d, want 17", smp.Threads)
	}
	if smp.Info.ExeName != "threads17" || smp.Info.ServiceName != "threads17" || smp.Info.ServiceNameFromEnv {
		t.Fatalf("names: %+v", *smp.Info)
	}
}

func TestMemoryRSS(t *testing.T) {
	// dd allocates one 64 MiB block and fills it from the pipe; holding back
	// the last byte keeps it blocked with the block resident.
	cmd := exec.Command("dd", "bs=64M", "count=1", "of=/dev/null", "iflag=fullblock")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cmd.Stdin = r
	c := startChild(t, cmd, false)
	r.Close()
	chunk := make([]byte, 1<<20)
	for i := 0; i < 64; i++ {
		n := len(chunk)
		if i == 63 {
			n--
		}
		if _, err := w.Write(chunk[:n]); err != nil {
			t.Fatal(err)
		}
	}
	s := newScanner(t, Config{Include: Filter{PIDs: []int{int(c.pid)}}})
	var rss int64
	for i := 0; i < 50; i++ {
		if smp := find(scan(t, s), c.pid); smp != nil {
			rss = smp.RSSBytes
			if rss >= 63<<20 {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rss < 63<<20 || rss > 512<<20 {
		t.Fatalf("RSS = %d bytes, want about 64 MiB", rss)
	}
}

// waitResident waits until pid's resident set reads above 0: right after
// exec it can read 0 (the per-CPU RSS counters of kernel 6.2+ are folded
// into the total lazily), in /proc and in the task iterator alike.
func waitResident(t *testing.T, pid int32) {
	t.Helper()
	for i := 0; ; i++ {
		if st, ok := procStat(t, pid); ok && st.rssPages > 0 {
			return
		}
		if i == 500 {
			t.Fatalf("pid %d: RSS still 0 after 5 s", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServiceAttributes(t *testing.T) {
	checkout := startChild(t, sleepCmd("OTEL_SERVICE_NAME=checkout",
		"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=prod,service.instance.id=checkout%2D1"), false)
	cart := startChild(t, sleepCmd("OTEL_RESOURCE_ATTRIBUTES=service.name=cart"), false)
	plain := startChild(t, sleepCmd(), false)
	started := time.Now()
	for _, c := range []*child{checkout, cart, plain} {
		waitResident(t, c.pid)
	}
	s := newScanner(t, Config{Include: Filter{PIDs: []int{int(checkout.pid), int(cart.pid), int(plain.pid)}}})
	snap := scan(t, s)
	if len(snap.Samples) != 3 {
		t.Fatalf("%d samples, want 3", len(snap.Samples))
	}
	host, _ := os.Hostname()
	sleepPath, _ := exec.LookPath("sleep")
	sleepPath, _ = filepath.EvalSymlinks(sleepPath)
	for _, tc := range []struct {
		c           *child
		name, inst  string
		nameFromEnv bool
	}{
		{checkout, "checkout", "checkout-1", true},
		{cart, "cart", "", true},
		{plain, "sleep", "", false},
	} {
		smp := find(snap, tc.c.pid)
		if smp == nil {
			t.Fatalf("pid %d missing", tc.c.pid)
		}
		in := smp.Info
		if in.ServiceName != tc.name || in.ServiceInstanceID != tc.inst || in.ServiceNameFromEnv != tc.nameFromEnv {
			t.Errorf("pid %d: service %q instance %q fromEnv %v; want %q %q %v",
				tc.c.pid, in.ServiceName, in.ServiceInstanceID, in.ServiceNameFromEnv, tc.name, tc.inst, tc.nameFromEnv)
		}
		if in.ExeName != "sleep" || in.ExePath != sleepPath || in.CommandLine != "sleep 1000" ||
			in.PPID != int32(os.Getpid()) || in.HostName != host || in.Owner != ownerName(t) {
			t.Errorf("pid %d: attributes %+v", tc.c.pid, *in)
		}
		if d := in.StartTime.Sub(started); d > 2*time.Second || d < -2*time.Second {
			t.Errorf("creation time %v is %v away from the start %v", in.StartTime, d, started)
		}
		if v, ok := in.Attr("service.name"); !ok || v != tc.name {
			t.Errorf("Attr(service.name) = %q %v", v, ok)
		}
		if v, _ := in.Attr("process.pid"); v != strconv.Itoa(int(tc.c.pid)) {
			t.Errorf("Attr(process.pid) = %q", v)
		}
		if smp.Threads != 1 || smp.RSSBytes <= 0 || (smp.State != 'S' && smp.State != 'R') {
			t.Errorf("pid %d: sample %+v", tc.c.pid, smp)
		}
	}
	if !snap.HasLoad || snap.Load1 < 0 || snap.HostName != host {
		t.Errorf("snapshot load %v %v host %q", snap.Load1, snap.HasLoad, snap.HostName)
	}

	// OmitCommandLine hides the command line but command-line filters still see it.
	s2 := newScanner(t, Config{OmitCommandLine: true,
		Include: Filter{CommandLineRegex: []string{"^sleep 1000$"}, PIDs: []int{int(plain.pid)}},
		Exclude: Filter{PIDs: []int{int(checkout.pid), int(cart.pid)}}})
	smp := find(scan(t, s2), plain.pid)
	if smp == nil || smp.Info.CommandLine != "" {
		t.Fatalf("OmitCommandLine: %+v", smp)
	}
}

func ownerName(t *testing.T) string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return strconv.Itoa(os.Getuid())
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 2 && f[2] == strconv.Itoa(os.Getuid()) {
			return f[0]
		}
	}
	return strconv.Itoa(os.Getuid())
}

// TestIdentity runs with stat files kept open (identity proven by the
// descriptor) and without (identity proven by the start time).
func TestIdentity(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprintf("keep files %v", keep), func(t *testing.T) { testIdentity(t, keep) })
	}
}

func testIdentity(t *testing.T, keep bool) {
	s := newScanner(t, Config{Include: Filter{Executables: []string{"sleep"}, CommandLineRegex: []string{"^sh -c"}}})
	if !keep {
		s.maxKept = 0
	}

	t.Run("restarted child", func(t *testing.T) {
		a := startChild(t, sleepCmd(), false)
		sa := find(scan(t, s), a.pid)
		a.stop()
		b := startChild(t, sleepCmd(), false)
		time.Sleep(20 * time.Millisecond)
		sb := find(scan(t, s), b.pid)
		if sa == nil || sb == nil {
			t.Fatal("children not found")
		}
		if sa.Info.ID == sb.Info.ID {
			t.Fatalf("restarted child kept identity %+v", sa.Info.ID)
		}
		if _, ok := s.procs[a.pid]; ok && a.pid != b.pid {
			t.Fatalf("state of exited pid %d kept", a.pid)
		}
	})

	t.Run("pid reuse", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("forcing PID reuse through /proc/sys/kernel/ns_last_pid needs root")
		}
		a := startChild(t, sleepCmd(), false)
		first := find(scan(t, s), a.pid)
		if first == nil {
			t.Fatal("child not found")
		}
		time.Sleep(30 * time.Millisecond) // start times are in 10 ms ticks
		a.stop()
		// Other processes on the machine may take the PID first; retry.
		var b *child
		for i := 0; i < 50 && b == nil; i++ {
			if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(int(a.pid)-1)), 0); err != nil {
				t.Skipf("cannot set ns_last_pid: %v", err)
			}
			c := startChild(t, sleepCmd(), false)
			if c.pid == a.pid {
				b = c
			} else {
				c.stop()
			}
		}
		if b == nil {
			t.Fatal("could not get the kernel to reuse the PID in 50 attempts")
		}
		second := find(scan(t, s), b.pid)
		if second == nil {
			t.Fatal("reused-PID child not found")
		}
		if second.Info.ID == first.Info.ID || second.Info.PID != first.Info.PID {
			t.Fatalf("identities %+v and %+v", first.Info.ID, second.Info.ID)
		}
		if second.HasUtilization {
			t.Fatal("a new identity got a utilization from the previous process's CPU time")
		}
	})

	t.Run("exec keeps identity and refreshes attributes", func(t *testing.T) {
		c := startChild(t, exec.Command("sh", "-c", "sleep 0.3; exec sleep 1000"), false)
		before := find(scan(t, s), c.pid)
		if before == nil {
			t.Fatal("shell not found")
		}
		time.Sleep(600 * time.Millisecond)
		after := find(scan(t, s), c.pid)
		if after == nil {
			t.Fatal("exec'd process not found")
		}
		if before.Info.ID != after.Info.ID {
			t.Fatal("exec changed the identity")
		}
		if after.Info == before.Info || after.Info.ExeName != "sleep" || after.Info.CommandLine != "sleep 1000" {
			t.Fatalf("after exec: %+v (before %+v)", *after.Info, *before.Info)
		}
		if !after.HasUtilization {
			t.Fatal("exec lost the CPU history of the process")
		}
	})
}

// TestFileDescriptors checks that kept stat files are closed when their
// process goes and at Close, and that the bound is respected.
func TestFileDescriptors(t *testing.T) {
	countFDs := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	var kids []*child
	for range 20 {
		kids = append(kids, startChild(t, sleepCmd(), false))
	}
	s, err := New(Config{Include: Filter{Executables: []string{"sleep"}}, Source: SourceProc})
	if err != nil {
		t.Fatal(err)
	}
	scan(t, s)
	for _, k := range kids {
		if p := s.procs[k.pid]; p == nil || p.fd < 0 {
			t.Fatalf("no kept stat file for child %d", k.pid)
		}
	}
	for _, k := range kids[:10] {
		k.stop()
	}
	scan(t, s)
	for _, k := range kids[:10] {
		if _, ok := s.procs[k.pid]; ok {
			t.Fatalf("state (and stat file) of exited child %d kept", k.pid)
		}
	}
	// Other processes come and go on the machine; the count must still
	// match the descriptors actually held.
	open := 0
	for _, p := range s.procs {
		if p.fd >= 0 {
			open++
		}
	}
	if open != s.kept {
		t.Fatalf("count %d, open descriptors in state %d", s.kept, open)
	}
	s.maxKept = s.kept // no more files may be kept
	more := startChild(t, sleepCmd(), false)
	if find(scan(t, s), more.pid) == nil {
		t.Fatal("process beyond the open-file bound not sampled")
	}
	if s.procs[more.pid].fd >= 0 || s.kept > s.maxKept {
		t.Fatalf("bound %d exceeded: kept %d", s.maxKept, s.kept)
	}
	// os/exec holds a pidfd per unwaited child, so compare around Close.
	before, kept := countFDs(), s.kept
	s.Close()
	if closed := before - countFDs(); closed != kept+1 {
		t.Fatalf("Close released %d descriptors, want %d kept + 1 for /proc", closed, kept)
	}
}

func TestExitMidScan(t *testing.T) {
	victim := startChild(t, sleepCmd(), false)
	other := startChild(t, sleepCmd(), false)
	s := newScanner(t, Config{Include: Filter{PIDs: []int{int(victim.pid), int(other.pid)}}})
	if n := len(scan(t, s).Samples); n != 2 {
		t.Fatalf("%d samples, want 2", n)
	}
	// The victim is listed, then exits (and is reaped) before its files
	// are read. The task iterator read it whole before it exited, so it is
	// reported once more from that reading; /proc finds it gone.
	s.afterList = func() { victim.stop() }
	snap := scan(t, s)
	s.afterList = nil
	if (find(snap, victim.pid) != nil) != (s.Source() == SourceBPF) || find(snap, other.pid) == nil {
		t.Fatalf("samples after exit (%s): %+v", s.Source(), snap.Samples)
	}
	snap = scan(t, s)
	if find(snap, victim.pid) != nil || find(snap, other.pid) == nil {
		t.Fatalf("samples a scan after exit: %+v", snap.Samples)
	}
	if _, ok := s.procs[victim.pid]; ok {
		t.Fatal("state of the exited process kept")
	}
}

func TestZombieSkipped(t *testing.T) {
	c := startChild(t, sleepCmd(), false)
	s := newScanner(t, Config{Include: Filter{PIDs: []int{int(c.pid)}}})
	if find(scan(t, s), c.pid) == nil {
		t.Fatal("child not found")
	}
	c.cmd.Process.Signal(unix.SIGKILL) // killed but not waited for: a zombie
	for i := 0; ; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.pid))
		if strings.Contains(string(b), ") Z ") {
			break
		}
		if i == 100 {
			t.Fatalf("child did not become a zombie: %s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if smp := find(scan(t, s), c.pid); smp != nil {
		t.Fatalf("zombie reported: %+v", smp)
	}
	if _, ok := s.procs[c.pid]; ok {
		t.Fatal("zombie state kept")
	}
}

func TestShortLivedChurn(t *testing.T) {
	s := newScanner(t, Config{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var started atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if exec.Command("true").Run() == nil {
					started.Add(1)
				}
			}
		}()
	}
	deadline := time.Now().Add(time.Second)
	scans := 0
	for time.Now().Before(deadline) {
		if _, err := s.Scan(time.Now()); err != nil {
			t.Fatalf("scan during churn: %v", err)
		}
		scans++
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	scan(t, s)
	// Every process the scanner still tracks is alive: nothing leaked.
	for pid := range s.procs {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			t.Errorf("state kept for vanished pid %d", pid)
		}
	}
	t.Logf("%d scans while about %d short-lived processes ran; %d tracked after", scans, started.Load(), len(s.procs))
}

func TestFilters(t *testing.T) {
	sl := startChild(t, sleepCmd(), false)
	cmd := helper("sleep")
	cmd.Args = append(cmd.Args, "marker-8d2f")
	marked := startChild(t, cmd, false)
	helperName := filepath.Base(os.Args[0])
	time.Sleep(50 * time.Millisecond) // let exec finish so the exe link is the final one

	cases := []struct {
		name       string
		cfg        Config
		sleep, hlp bool
	}{
		{"executable exact", Config{Include: Filter{Executables: []string{"sleep"}}}, true, false},
		{"executable regex", Config{Include: Filter{ExecutableRegex: []string{"^sle+p$", "^" + regexpQuote(helperName) + "$"}}}, true, true},
		{"command line regex", Config{Include: Filter{CommandLineRegex: []string{"marker-8d2f"}}}, false, true},
		{"pids", Config{Include: Filter{PIDs: []int{int(sl.pid)}}}, true, false},
		{"exclude wins", Config{Include: Filter{Executables: []string{"sleep"}, PIDs: []int{int(marked.pid)}},
			Exclude: Filter{CommandLineRegex: []string{"marker-8d2f"}}}, true, false},
		{"exclude only", Config{Exclude: Filter{Executables: []string{"sleep"}}}, false, true},
		{"no filter", Config{}, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newScanner(t, tc.cfg)
			snap := scan(t, s)
			if got := find(snap, sl.pid) != nil; got != tc.sleep {
				t.Errorf("sleep child included = %v, want %v", got, tc.sleep)
			}
			if got := find(snap, marked.pid) != nil; got != tc.hlp {
				t.Errorf("marked helper included = %v, want %v", got, tc.hlp)
			}
		})
	}
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TestPermissionErrorsLoggedOnce runs a scanner as an unprivileged user:
// it cannot read root's processes' exe links and environments, and must
// say so once per process, not on every scan.
func TestPermissionErrorsLoggedOnce(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start the scanner as another user")
	}
	// Keep a root process around whose details the unprivileged scanner cannot read.
	startChild(t, sleepCmd(), false)
	dir, err := os.MkdirTemp("", "procfs-perm")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "procfs.test")
	copyFile(t, os.Args[0], bin)
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=scan-as-user")
	cmd.Dir = dir
	runAs(cmd, 65534, 65534)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	var res struct {
		PerPID   map[string]int `json:"per_pid"`
		Warns    int            `json:"warns"`
		WarnText []string       `json:"warn_text"`
		UID      int            `json:"uid"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.UID != 65534 || len(res.PerPID) == 0 {
		t.Fatalf("unprivileged scanner logged no permission problems: %s", out)
	}
	for pid, n := range res.PerPID {
		if n != 1 {
			t.Errorf("pid %s logged %d times over 3 scans, want once", pid, n)
		}
	}
	// The warnings are rate-limited to one a minute, and the one there is
	// names the process and the file, e.g. "/proc/1/environ".
	if res.Warns != 1 {
		t.Errorf("%d warnings, want exactly 1", res.Warns)
	}
	for _, w := range res.WarnText {
		if !regexp.MustCompile(`/proc/[0-9]+/(stat|exe|cmdline|status|environ)`).MatchString(w) {
			t.Errorf("warning does not name the process and file: %q", w)
		}
	}
	t.Logf("%d processes logged once each", len(res.PerPID))
}

func copyFile(t *testing.T, from, to string) {
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestKernelThreads checks that kernel threads are never reported and, once
// known, are not read again while their /proc entry is unchanged.
func TestKernelThreads(t *testing.T) {
	s := newScanner(t, Config{})
	snap := scan(t, s)
	for _, smp := range snap.Samples {
		if smp.Info.PID == 2 || smp.Info.PPID == 2 {
			t.Errorf("kernel thread reported: %+v", *smp.Info)
		}
	}
	if s.Source() == SourceBPF {
		return // the iterator leaves kernel threads out in the kernel
	}
	kernel := 0
	for _, p := range s.procs {
		if p.kernel {
			kernel++
		}
	}
	if kernel == 0 {
		t.Skip("no kernel threads visible in this PID namespace")
	}
	s.statReads = 0
	scan(t, s)
	if limit := len(s.pids) - kernel/2; s.statReads > limit {
		t.Fatalf("%d stat reads for %d PIDs of which %d kernel threads", s.statReads, len(s.pids), kernel)
	}
	t.Logf("%d PIDs, %d kernel threads, %d stat reads in the second scan", len(s.pids), kernel, s.statReads)
}

// TestEmptyCommandLine: a process with no argv at all (argc 0) reads like
// one caught inside execve. It is re-read a bounded number of times, then
// taken as it is.
func TestEmptyCommandLine(t *testing.T) {
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Skip("no cat")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	pid, err := syscall.ForkExec(cat, []string{}, &syscall.ProcAttr{Files: []uintptr{r.Fd(), 2, 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
	})
	time.Sleep(50 * time.Millisecond)
	s := newScanner(t, Config{Include: Filter{PIDs: []int{pid}}})
	for i := 0; i < maxEmptyReads+2; i++ {
		smp := find(scan(t, s), int32(pid))
		if smp == nil {
			t.Fatalf("scan %d: argc-0 process not reported", i)
		}
		if smp.Info.CommandLine != "" || smp.Info.ExeName != "cat" {
			t.Fatalf("attributes %+v", *smp.Info)
		}
	}
	if p := s.procs[int32(pid)]; p.retry || p.emptyReads != maxEmptyReads {
		t.Fatalf("retry %v after %d empty reads", p.retry, p.emptyReads)
	}
}
