package procfs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A comm with spaces and parentheses, as a process may set with prctl.
	line := "4242 (we(ird) na)me) S 17 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 9 0 987654 3133440 389 18446744073709551615 1 2 3\n"
	var st statFields
	if err := parseStat([]byte(line), &st); err != nil {
		t.Fatal(err)
	}
	if string(st.comm) != "we(ird) na)me" || st.state != 'S' || st.ppid != 17 || st.flags != 4194560 ||
		st.utimeNs != 1234e7 || st.stimeNs != 567e7 || st.numThreads != 9 || st.startTicks != 987654 || st.rssPages != 389 {
		t.Fatalf("parsed %+v comm %q", st, st.comm)
	}
	kthread := "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0 18446744073709551615 0 0"
	if err := parseStat([]byte(kthread), &st); err != nil || st.flags&pfKthread == 0 {
		t.Fatalf("kthread flags %x err %v", st.flags, err)
	}
	for _, bad := range []string{"", "12 (x", "12 (x) S 1 2", "12 x) S 1 2 3"} {
		if err := parseStat([]byte(bad), &st); err == nil {
			t.Errorf("parseStat(%q) accepted malformed input", bad)
		}
	}
}

func TestParseSmallFiles(t *testing.T) {
	if v, ok := parseLoad1([]byte("1.52 0.58 0.59 2/345 12345\n")); !ok || v != 1.52 {
		t.Errorf("load1 = %v %v", v, ok)
	}
	if _, ok := parseLoad1([]byte("")); ok {
		t.Error("empty loadavg accepted")
	}
	if v, ok := parseBootTime([]byte("cpu  1 2 3\nintr 5\nbtime 1764095000\nprocesses 9\n")); !ok || v != 1764095000 {
		t.Errorf("btime = %v %v", v, ok)
	}
	if v, ok := parseUID([]byte("Name:\tx\nUmask:\t0022\nUid:\t1000\t1001\t1002\t1003\nGid:\t0\n")); !ok || v != 1000 {
		t.Errorf("uid = %v %v", v, ok)
	}
	cmd, a0 := parseCmdline([]byte("/usr/bin/python3\x00-m\x00http.server\x00"))
	if cmd != "/usr/bin/python3 -m http.server" || a0 != "/usr/bin/python3" {
		t.Errorf("cmdline %q argv0 %q", cmd, a0)
	}
	if n := countCPUList("0-3,8-11,16"); n != 9 {
		t.Errorf("countCPUList = %d", n)
	}
	if cleanExe("/opt/app (deleted)") != "/opt/app" {
		t.Error("deleted marker kept")
	}
}

func TestEnvService(t *testing.T) {
	env := func(kv ...string) []byte { return []byte(strings.Join(kv, "\x00") + "\x00") }
	cases := []struct {
		env        []byte
		name, inst string
	}{
		{env("PATH=/bin", "OTEL_SERVICE_NAME=checkout"), "checkout", ""},
		{env("OTEL_RESOURCE_ATTRIBUTES=deployment.environment=prod, service.name = cart ,service.instance.id=cart%2D7"), "cart", "cart-7"},
		{env("OTEL_RESOURCE_ATTRIBUTES=service.name=cart", "OTEL_SERVICE_NAME=checkout"), "checkout", ""},
		{env("OTEL_SERVICE_NAME=", "OTEL_RESOURCE_ATTRIBUTES=service.name=cart"), "cart", ""},
		{env("OTEL_RESOURCE_ATTRIBUTES=garbage,=,service.name=%zz"), "%zz", ""},
		{env("MY_OTEL_SERVICE_NAME=nope"), "", ""},
	}
	for _, c := range cases {
		n, i := envService(c.env)
		if n != c.name || i != c.inst {
			t.Errorf("envService(%q) = %q, %q; want %q, %q", c.env, n, i, c.name, c.inst)
		}
	}
}

func TestCgroupIDs(t *testing.T) {
	const cid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cases := []struct{ path, container, pod string }{
		{"/docker/" + cid, cid, ""},
		{"/system.slice/docker-" + cid + ".scope", cid, ""},
		{"/kubepods/burstable/pod1b2c3d4e-aaaa-bbbb-cccc-0123456789ab/" + cid, cid, "1b2c3d4e-aaaa-bbbb-cccc-0123456789ab"},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_aaaa_bbbb_cccc_0123456789ab.slice/cri-containerd-" + cid + ".scope",
			cid, "1b2c3d4e-aaaa-bbbb-cccc-0123456789ab"},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1b2c3d4e_aaaa_bbbb_cccc_0123456789ab.slice/crio-" + cid + ".scope",
			cid, "1b2c3d4e-aaaa-bbbb-cccc-0123456789ab"},
		{"/machine.slice/libpod-" + cid + ".scope/container", cid, ""},
		{"/user.slice/user-1000.slice/session-2.scope", "", ""},
		{"/process_api/5876642ad13b77a3c7a15bb16ff6e1b1", "", ""},        // 32 hex: not a container id
		{"/x/" + cid + "0", "", ""},                                      // 65 hex
		{"/kubepods/pod1b2c3d4e-aaaa-bbbb-cccc-0123456789abc/x", "", ""}, // uid too long
		{"/kubepods/besteffort/pod1b2c3d4e-aaaa-bbbb-cccc-0123456789ab", "", "1b2c3d4e-aaaa-bbbb-cccc-0123456789ab"},
	}
	for _, c := range cases {
		if got := containerIDFromPath(c.path); got != c.container {
			t.Errorf("containerIDFromPath(%q) = %q, want %q", c.path, got, c.container)
		}
		if got := podUIDFromPath(c.path); got != c.pod {
			t.Errorf("podUIDFromPath(%q) = %q, want %q", c.path, got, c.pod)
		}
	}
}

func TestParseCgroupAndQuota(t *testing.T) {
	dir := t.TempDir()
	// A v2 hierarchy mounted at dir: a parent limited to 1.5 CPUs and a
	// child limited to 3 CPUs; the parent's limit binds.
	child := filepath.Join(dir, "kubepods", "pod1", "c1")
	if err := os.MkdirAll(child, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "cpu.max"), "max 100000\n")
	write(filepath.Join(dir, "kubepods", "cpu.max"), "max 100000\n")
	write(filepath.Join(dir, "kubepods", "pod1", "cpu.max"), "150000 100000\n")
	write(filepath.Join(child, "cpu.max"), "300000 100000\n")

	m := cgroupMounts{v2Root: "/", v2Point: dir}
	ci := parseCgroup([]byte("0::/kubepods/pod1/c1\n"), &m)
	if ci.cpuDir != child || ci.v1 {
		t.Fatalf("cpuDir %q v1 %v", ci.cpuDir, ci.v1)
	}
	if got := cgroupCPUs(ci.cpuDir, dir, false); got != 1.5 {
		t.Fatalf("cgroupCPUs = %v, want 1.5", got)
	}
	// Hybrid host: the cpu controller is in v1 and wins over the v2 line.
	m.v1Root, m.v1Point = "/", "/sys/fs/cgroup/cpu,cpuacct"
	ci = parseCgroup([]byte("12:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n0::/\n"), &m)
	if ci.cpuDir != "/sys/fs/cgroup/cpu,cpuacct/docker/abc" || !ci.v1 {
		t.Fatalf("v1 cpuDir %q v1 %v", ci.cpuDir, ci.v1)
	}
	// Mounted from a sub-directory (container without a cgroup namespace).
	if got := mountedDir("/docker/abc", "/sys/fs/cgroup", "/docker/abc/sub"); got != "/sys/fs/cgroup/sub" {
		t.Errorf("mountedDir = %q", got)
	}
	if got := unescapeMount(`/a\040b`); got != "/a b" {
		t.Errorf("unescapeMount = %q", got)
	}
	v1 := t.TempDir()
	write(filepath.Join(v1, "cpu.cfs_quota_us"), "50000\n")
	write(filepath.Join(v1, "cpu.cfs_period_us"), "100000\n")
	if got := cgroupCPUs(v1, v1, true); got != 0.5 {
		t.Errorf("v1 quota = %v, want 0.5", got)
	}
	write(filepath.Join(v1, "cpu.cfs_quota_us"), "-1\n")
	if got := cgroupCPUs(v1, v1, true); got != 0 {
		t.Errorf("unlimited v1 quota = %v, want 0", got)
	}
}

func TestReadCgroupMounts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mountinfo")
	content := "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
		"31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n" +
		"32 30 0:29 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n" +
		"40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	m := readCgroupMounts(p)
	if m.v1Point != "/sys/fs/cgroup/cpu,cpuacct" || m.v2Point != "/sys/fs/cgroup/unified" {
		t.Fatalf("mounts %+v", m)
	}
}

func TestFilterErrorsNameField(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Include: Filter{ExecutableRegex: []string{"ok", "("}}}, `include.executable_regex[1] "("`},
		{Config{Exclude: Filter{CommandLineRegex: []string{"[z-a]"}}}, `exclude.command_line_regex[0] "[z-a]"`},
		{Config{Include: Filter{PIDs: []int{-3}}}, "include.pids[0]: -3"},
		{Config{Exclude: Filter{Executables: []string{""}}}, "exclude.executables[0]"},
		{Config{ProcRoot: "/nonexistent-proc"}, `proc_root "/nonexistent-proc"`},
	}
	for _, c := range cases {
		s, err := New(c.cfg)
		if err == nil {
			s.Close()
			t.Errorf("New(%+v) accepted bad config", c.cfg)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %q does not contain %q", err, c.want)
		}
	}
}

// TestCheckTarget: kernel threads and zombies are refused as task targets
// with the reason; a live user process and the test itself are fine.
func TestCheckTarget(t *testing.T) {
	if err := CheckTarget("/proc", os.Getpid()); err != nil {
		t.Fatalf("the test process: %v", err)
	}
	// kthreadd is pid 2 in the initial pid namespace.
	if b, err := os.ReadFile("/proc/2/stat"); err == nil && strings.Contains(string(b), "(kthreadd)") {
		err := CheckTarget("/proc", 2)
		if !IsNotProfilable(err) || !strings.Contains(err.Error(), "process 2 (kthreadd) is a kernel thread") {
			t.Fatalf("kthreadd: %v", err)
		}
	}
	// A child that exited and is not yet reaped is a zombie.
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	pid := cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = CheckTarget("/proc", pid); IsNotProfilable(err) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !IsNotProfilable(err) || !strings.Contains(err.Error(), "is a zombie") {
		t.Fatalf("unreaped child %d: %v", pid, err)
	}
	if err := CheckTarget("/proc", 1<<30); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing pid: %v", err)
	}
	// Fabricated stat files: a kernel thread flag and a malformed file.
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "7"), 0o755)
	os.WriteFile(filepath.Join(root, "7", "stat"), []byte("7 (kworker/0:1) I 2 0 0 0 -1 69238880 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0"), 0o644)
	if err := CheckTarget(root, 7); !IsNotProfilable(err) {
		t.Fatalf("kworker: %v", err)
	}
	os.WriteFile(filepath.Join(root, "7", "stat"), []byte("7 (x"), 0o644)
	if err := CheckTarget(root, 7); err == nil || IsNotProfilable(err) {
		t.Fatalf("malformed stat: %v", err)
	}
}
