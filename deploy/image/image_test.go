package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/contprof/contprof/deploy/render"
)

// The image layout make image writes holds an image per architecture whose
// binary, extracted, runs (for the host's architecture) and names the
// distribution.
func TestImageHasRunnableBinary(t *testing.T) {
	root := filepath.Join(render.ChartDir(), "..", "..", "..")
	if out, err := exec.Command("make", "-C", root, "image").CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	} else {
		t.Logf("%s", out)
	}
	dir := filepath.Join(root, "bin", "image")
	for _, arch := range Arches {
		bin := filepath.Join(t.TempDir(), "otelcol-contprof")
		if err := ExtractBinary(dir, arch, bin); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(bin)
		if err != nil || st.Mode()&0o111 == 0 || st.Size() < 1<<20 {
			t.Fatalf("%s: binary %v %v", arch, st, err)
		}
		if arch != runtime.GOARCH {
			continue
		}
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "otelcol-contprof version") {
			t.Fatalf("%s --version: %v: %s", arch, err, out)
		}
		t.Logf("%s: %s", arch, strings.TrimSpace(string(out)))
	}
}
