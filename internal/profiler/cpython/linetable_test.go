package cpython

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// pythons are the interpreters tests run, by minor version: Debian's,
// and pyenv builds where present (a developer machine).
func pythons(t *testing.T) map[int]string {
	t.Helper()
	out := map[int]string{}
	if _, err := os.Stat("/usr/bin/python3.11"); err == nil {
		out[11] = "/usr/bin/python3.11"
	}
	for minor := 8; minor <= 13; minor++ {
		if _, ok := out[minor]; ok {
			continue
		}
		m, _ := filepath.Glob(filepath.Join("/root/.pyenv/versions", "3."+itoa(minor)+".*", "bin", "python3."+itoa(minor)))
		if len(m) > 0 {
			out[minor] = m[0]
		}
	}
	if len(out) == 0 {
		t.Skip("no Python 3.8-3.13 on this machine")
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

// The line of every code unit of every code object of the test workloads,
// decoded by lineFor, equals the line CPython's own API gives.
func TestLineTables(t *testing.T) {
	files, _ := filepath.Glob("../../../testdata/workloads/python/*.py")
	files = append(files, "testdata/linetables.py")
	for minor, py := range pythons(t) {
		kind := offsetTable[minor].linesKind
		for _, file := range files {
			out, err := exec.Command(py, "testdata/linetables.py", file).Output()
			if err != nil {
				t.Fatalf("%s: %v", py, err)
			}
			var codes []struct {
				Name  string
				First int
				Table string
				Lines []int
			}
			if err := json.Unmarshal(out, &codes); err != nil {
				t.Fatal(err)
			}
			for _, c := range codes {
				table, _ := hex.DecodeString(c.Table)
				bad := 0
				for i, want := range c.Lines {
					if want <= 0 {
						continue // no line (0: the module's RESUME): the decoder falls back to the first line
					}
					if got := lineFor(kind, table, c.First, 2*i); got != want {
						if bad++; bad <= 3 {
							t.Errorf("3.%d %s %s: unit %d: line %d, want %d", minor, filepath.Base(file), c.Name, i, got, want)
						}
					}
				}
			}
		}
	}
}
