// Package image builds the distribution's OCI image without a container
// daemon: per architecture a static binary in one layer on an empty base
// (github.com/google/go-containerregistry), collected in a multi-arch index
// written as an OCI image layout.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BinaryPath is where the binary sits in the image.
const BinaryPath = "/otelcol-contprof"

// Arches are the platforms the image is built for.
var Arches = []string{"amd64", "arm64"}

// BuildBinary compiles the ocb-generated distribution in srcDir statically
// for linux/arch.
func BuildBinary(srcDir, arch, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = srcDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for %s: %v\n%s", arch, err, b)
	}
	return nil
}

// epoch keeps the layers reproducible.
var epoch = time.Unix(0, 0)

// Image is the single-layer image of the binary at bin for arch.
func Image(bin, arch string) (v1.Image, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: BinaryPath[1:], Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: epoch}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", arch, v1.Time{Time: epoch}
	cf.Config.Entrypoint = []string{BinaryPath}
	cf.Config.Cmd = []string{"--config=/etc/contprof/config/config.yaml", "--feature-gates=service.profilesSupport"}
	cf.Config.Labels = map[string]string{"org.opencontainers.image.source": "https://github.com/contprof/contprof"}
	return mutate.ConfigFile(img, cf)
}

// Build compiles the binaries and writes the multi-arch index as an OCI
// image layout in outDir. It returns each architecture's compressed size.
func Build(srcDir, outDir string) (map[string]int64, error) {
	if err := os.RemoveAll(outDir); err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	sizes := map[string]int64{}
	tmp, err := os.MkdirTemp("", "contprof-image")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for _, arch := range Arches {
		bin := filepath.Join(tmp, "otelcol-contprof-"+arch)
		if err := BuildBinary(srcDir, arch, bin); err != nil {
			return nil, err
		}
		img, err := Image(bin, arch)
		if err != nil {
			return nil, err
		}
		if sizes[arch], err = Size(img); err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	if _, err := layout.Write(outDir, idx); err != nil {
		return nil, err
	}
	return sizes, nil
}

// Size is the compressed size of an image: manifest, config and layers.
func Size(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	raw, err := img.RawManifest()
	return n + int64(len(raw)), err
}

// ExtractBinary writes the binary of the image for arch in the layout at
// dir to out.
func ExtractBinary(dir, arch, out string) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		return err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		if d.Platform == nil || d.Platform.Architecture != arch || d.Platform.OS != "linux" {
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return err
		}
		rc := mutate.Extract(img)
		defer rc.Close()
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				return fmt.Errorf("%s: %s not in the image: %w", arch, BinaryPath, err)
			}
			if "/"+h.Name != BinaryPath {
				continue
			}
			f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode))
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}
	}
	return fmt.Errorf("no linux/%s image in %s", arch, dir)
}
