package workload

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BuildCDefault compiles testdata/workloads/<name> as a distribution would:
// gcc -O2 with the compiler's defaults (no frame pointers), plus extra
// flags, into a temporary directory.
func BuildCDefault(t testing.TB, name string, extra ...string) string {
	t.Helper()
	src := filepath.Join(Dir(t), name)
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(name, filepath.Ext(name)))
	args := append([]string{"-O2"}, extra...)
	args = append(args, "-o", out, src)
	run(t, exec.Command(compiler(name), args...))
	return out
}
