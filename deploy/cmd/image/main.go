// Command image builds the multi-arch OCI image layout of the distribution
// (make image): image -src build/otelcol-contprof -out bin/image.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/contprof/contprof/deploy/image"
)

func main() {
	src := flag.String("src", "../build/otelcol-contprof", "the ocb-generated distribution sources")
	out := flag.String("out", "../bin/image", "OCI image layout directory to write")
	flag.Parse()
	sizes, err := image.Build(*src, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, a := range image.Arches {
		fmt.Printf("linux/%s: %.1f MiB compressed\n", a, float64(sizes[a])/(1<<20))
	}
	fmt.Println("OCI image layout:", *out, "(push with: crane push", *out, "<registry>/otelcol-contprof:<tag>, or skopeo copy oci:"+*out+" docker://...)")
}
