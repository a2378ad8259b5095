//go:build linux

package symbolize

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ulikunitz/xz"
)

// Symbols of stripped binaries. Distributions strip .symtab from what they
// ship and keep it elsewhere:
//   - Fedora/RHEL: .gnu_debugdata, "MiniDebugInfo", an xz-compressed ELF
//     holding a .symtab of the functions .dynsym lacks;
//   - Debian/Ubuntu (*-dbgsym, *-dbg) and Fedora (*-debuginfo): a separate
//     debug file /usr/lib/debug/.build-id/xx/yyyy.debug named by the build id.
// Both are read when present, in addition to .symtab/.dynsym.

// DebugRoot is where separate debug files are looked up by build id.
var DebugRoot = "/usr/lib/debug"

// maxMiniDebugInfo bounds the decompressed size of .gnu_debugdata (a few
// hundred KiB for the largest libraries).
const maxMiniDebugInfo = 64 << 20

// extraSymbols returns the function symbols of f's MiniDebugInfo and of its
// separate debug file (under root, for build id gnuBuildID), and which of
// the two were found.
func extraSymbols(f *elf.File, gnuBuildID, root string) ([]elf.Symbol, []string) {
	var (
		out     []elf.Symbol
		sources []string
	)
	if syms, err := miniDebugInfo(f); err == nil && len(syms) > 0 {
		out, sources = append(out, syms...), append(sources, ".gnu_debugdata")
	}
	if path := debugFilePath(root, gnuBuildID); path != "" {
		if syms, err := symbolsOfFile(path); err == nil && len(syms) > 0 {
			out, sources = append(out, syms...), append(sources, path)
		}
	}
	return out, sources
}

// miniDebugInfo decompresses .gnu_debugdata and reads its .symtab.
func miniDebugInfo(f *elf.File) ([]elf.Symbol, error) {
	sec := f.Section(".gnu_debugdata")
	if sec == nil || sec.Type == elf.SHT_NOBITS {
		return nil, nil
	}
	r, err := xz.NewReader(sec.Open())
	if err != nil {
		return nil, fmt.Errorf(".gnu_debugdata: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxMiniDebugInfo+1))
	if err != nil {
		return nil, fmt.Errorf(".gnu_debugdata: %w", err)
	}
	if len(data) > maxMiniDebugInfo {
		return nil, fmt.Errorf(".gnu_debugdata: more than %d bytes decompressed", maxMiniDebugInfo)
	}
	mini, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf(".gnu_debugdata: %w", err)
	}
	defer mini.Close()
	return mini.Symbols()
}

func debugFilePath(root, buildID string) string {
	if root == "" || len(buildID) < 3 {
		return ""
	}
	p := filepath.Join(root, ".build-id", buildID[:2], buildID[2:]+".debug")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

func symbolsOfFile(path string) ([]elf.Symbol, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Symbols()
}
