package privilege

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/contprof/contprof/internal/control/policy"
)

const helperEnv = "CONTPROF_PRIVILEGE_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "unprivileged" {
		unprivilegedHelper()
		return
	}
	os.Exit(m.Run())
}

// unprivilegedHelper probes and tries to create a BPF map, and prints what
// it found as JSON.
func unprivilegedHelper() {
	st := Probe("/sys")
	_, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	out := map[string]any{"status": st, "raw": fmt.Sprint(err), "explained": fmt.Sprint(Explain(err)), "eperm": errors.Is(Explain(err), unix.EPERM)}
	json.NewEncoder(os.Stdout).Encode(out)
}

func TestStatusTexts(t *testing.T) {
	have := map[string]bool{CapBPF: false, CapPerfmon: false, CapSysPtrace: true, CapDACReadSearch: false, BTF: true, Tracefs: false}
	s := newStatus(have, 65534)
	if got := strings.Join(s.Missing, ","); got != "CAP_BPF,CAP_PERFMON,CAP_DAC_READ_SEARCH,tracefs" {
		t.Fatalf("missing %s", got)
	}
	if got := fmt.Sprint(s.DisabledTargets()); got != "[on_cpu off_cpu network]" {
		t.Fatalf("disabled %s", got)
	}
	err := s.Admit(policy.TargetOnCPU)
	if err == nil || err.Error() != "on_cpu profiling cannot run: CAP_BPF, CAP_PERFMON are missing (the collector runs as uid 65534; grant CAP_BPF and CAP_PERFMON, or run as root)" {
		t.Fatalf("Admit: %v", err)
	}
	if !strings.Contains(s.Admit(policy.TargetNetwork).Error(), "CAP_BPF, CAP_PERFMON, tracefs are missing") {
		t.Fatalf("network: %v", s.Admit(policy.TargetNetwork))
	}
	sum := s.Summary()
	for _, want := range []string{"missing CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH, tracefs", "disabled task targets: on_cpu, off_cpu, network", "/proc details"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary %q lacks %q", sum, want)
		}
	}
	all := newStatus(map[string]bool{CapBPF: true, CapPerfmon: true, CapSysPtrace: true, CapDACReadSearch: true, BTF: true, Tracefs: true}, 0)
	if all.Summary() != "" || all.Admit(policy.TargetOffCPU) != nil || len(all.DisabledTargets()) != 0 {
		t.Fatalf("fully privileged: %+v", all)
	}
}

func TestExplainDropsTheMemlockHint(t *testing.T) {
	raw := fmt.Errorf("load program: %w (MEMLOCK may be too low, consider rlimit.RemoveMemlock)", unix.EPERM)
	err := Explain(raw)
	if strings.Contains(err.Error(), "MEMLOCK") || !strings.Contains(err.Error(), "needs CAP_BPF and CAP_PERFMON") || !errors.Is(err, unix.EPERM) {
		t.Fatalf("Explain = %v", err)
	}
	if twice := Explain(fmt.Errorf("task: %w", err)); strings.Count(twice.Error(), "needs CAP_BPF") != 1 {
		t.Fatalf("explained twice: %v", twice)
	}
	other := errors.New("verifier: invalid mem access")
	if Explain(other) != other || Explain(nil) != nil {
		t.Fatal("Explain changed an unrelated error")
	}
}

// TestUnprivileged runs the probe and a real BPF map creation as uid 65534
// without capabilities: the probe names the missing capabilities and the
// kernel's EPERM is explained without the MEMLOCK hint.
func TestUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a helper as another user")
	}
	st := Probe("/sys")
	if !st.Have[CapBPF] || !st.Have[CapPerfmon] || !st.Have[CapSysPtrace] || !st.Have[CapDACReadSearch] {
		t.Fatalf("root lacks capabilities: %+v", st)
	}
	// Not t.TempDir: its parent is private to root.
	dir, err := os.MkdirTemp("", "privilege")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "privilege.test")
	copyFile(t, os.Args[0], bin)
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=unprivileged")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	var res struct {
		Status    Status `json:"status"`
		Raw       string `json:"raw"`
		Explained string `json:"explained"`
		EPERM     bool   `json:"eperm"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, c := range []string{CapBPF, CapPerfmon, CapSysPtrace, CapDACReadSearch} {
		if res.Status.Have[c] {
			t.Errorf("uid 65534 has %s", c)
		}
	}
	if len(res.Status.Disabled) != len(policy.Targets) {
		t.Errorf("disabled targets %v", res.Status.Disabled)
	}
	if !res.EPERM || strings.Contains(res.Explained, "MEMLOCK") || !strings.Contains(res.Explained, "needs CAP_BPF") {
		t.Fatalf("unprivileged map creation: raw %q explained %q", res.Raw, res.Explained)
	}
	t.Logf("raw: %s\nexplained: %s", res.Raw, res.Explained)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
}
