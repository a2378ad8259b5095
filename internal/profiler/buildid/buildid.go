// Package buildid reads the build ids of ELF files: the GNU build id that
// names a file across copies and containers (and finds its debug info), and
// the Go build id.
package buildid

import (
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strings"
)

// GNU returns the GNU build id of the ELF file at path.
func GNU(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if id, _ := Read(f); id != "" {
		return id, nil
	}
	return "", errors.New("no build id")
}

// Read reads the GNU and Go build ids from note sections, or from
// PT_NOTE segments when the section headers are gone.
func Read(f *elf.File) (gnu, goID string) {
	var notes [][]byte
	for _, s := range f.Sections {
		if s.Type == elf.SHT_NOTE {
			if d, err := s.Data(); err == nil {
				notes = append(notes, d)
			}
		}
	}
	if len(notes) == 0 {
		for _, p := range f.Progs {
			if p.Type == elf.PT_NOTE {
				if d, err := io.ReadAll(p.Open()); err == nil {
					notes = append(notes, d)
				}
			}
		}
	}
	for _, d := range notes {
		parseNotes(f.ByteOrder, d, func(name string, typ uint32, desc []byte) {
			switch {
			case name == "GNU" && typ == 3 && gnu == "": // NT_GNU_BUILD_ID
				gnu = hex.EncodeToString(desc)
			case name == "Go" && typ == 4 && goID == "": // Go build id
				goID = string(desc)
			}
		})
	}
	return gnu, goID
}

func parseNotes(bo binary.ByteOrder, d []byte, fn func(name string, typ uint32, desc []byte)) {
	align4 := func(n uint32) uint32 { return (n + 3) &^ 3 }
	for len(d) >= 12 {
		namesz, descsz, typ := bo.Uint32(d), bo.Uint32(d[4:]), bo.Uint32(d[8:])
		d = d[12:]
		if uint64(align4(namesz))+uint64(align4(descsz)) > uint64(len(d)) {
			return
		}
		name := strings.TrimRight(string(d[:namesz]), "\x00")
		desc := d[align4(namesz) : align4(namesz)+descsz]
		fn(name, typ, desc)
		d = d[align4(namesz)+align4(descsz):]
	}
}
