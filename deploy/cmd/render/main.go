// Command render writes deploy/kubernetes/contprof.yaml from the Helm chart.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/contprof/contprof/deploy/render"
)

func main() {
	b, err := render.Plain()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := filepath.Join(render.ChartDir(), "..", "..", "kubernetes", "contprof.yaml")
	if err := os.WriteFile(out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
