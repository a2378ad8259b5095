package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The machine setup `make run` and `make test` start with: a user who is
// not root is told what is missing and how to get it, and nothing fails.
// (As root it installs; that is what CI exercises on every run.)
func TestSetupScriptTellsWhatIsMissing(t *testing.T) {
	requireRoot(t) // to run it as another user
	dir := t.TempDir()
	// Readable by the unprivileged user, wherever the checkout is.
	// Stop below the temp root itself: /tmp must keep its sticky 1777 mode
	// (a JVM run as nobody later creates its attach socket there).
	for d := dir; strings.HasPrefix(d, os.TempDir()+string(filepath.Separator)); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(dir, "setup.sh")
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "scripts", "setup.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, data, 0o755); err != nil {
		t.Fatal(err)
	}
	// A PATH with only what the script itself uses, as on a fresh machine.
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"id", "mountpoint", "sed", "dirname", "go"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s not found", tool)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(env []string, args ...string) (string, error) {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "/bin/bash", script}, args...)...)
		cmd.Env = append([]string{"PATH=" + bin}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run(nil, "test")
	if err != nil {
		t.Fatalf("setup.sh test as a user: %v\n%s", err, out)
	}
	for _, want := range []string{
		"missing packages for 'make test':", "wrk", "nftables", "linux-perf", "default-jdk-headless",
		"install them as root: apt-get install", "or run 'sudo make test'",
		"not root: eBPF profiling", "CAP_BPF",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
	// make run needs no packages.
	if out, err := run(nil, "run"); err != nil || strings.Contains(out, "missing packages") {
		t.Errorf("setup.sh run: %v\n%s", err, out)
	}
	if out, err := run([]string{"CONTPROF_SKIP_SETUP=1"}, "test"); err != nil || out != "" {
		t.Errorf("CONTPROF_SKIP_SETUP=1: %v %q", err, out)
	}
	if out, err := run(nil, "deploy"); err == nil || !strings.Contains(out, "unknown mode 'deploy'") {
		t.Errorf("unknown mode: %v %q", err, out)
	}
}

// As root, the setup mounts tracefs when it is not mounted (tried in a
// private mount namespace, so the machine's own mount is left alone).
func TestSetupScriptMountsTracefs(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not found")
	}
	script := filepath.Join(repoRoot(t), "scripts", "setup.sh")
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "/bin/bash", "-c",
		`(mountpoint -q /sys/kernel/tracing && umount /sys/kernel/tracing) || true
		 mountpoint -q /sys/kernel/tracing && { echo "could not unmount"; exit 1; }
		 "$0" run && mountpoint -q /sys/kernel/tracing && test -e /sys/kernel/tracing/events`, script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("setup.sh run with tracefs unmounted: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "mounting tracefs") {
		t.Fatalf("output does not say it mounts tracefs:\n%s", out)
	}
}
