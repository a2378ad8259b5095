package procfs

import (
	"os"
	"strings"
	"testing"
)

func TestStartTimeAndNamespace(t *testing.T) {
	st, err := StartTime(os.Getpid())
	if err != nil || st == "" || strings.ContainsAny(st, " )") {
		t.Fatalf("StartTime(self) = %q, %v", st, err)
	}
	if _, err := StartTime(1 << 22); err == nil || err.Error() != "no such process" {
		t.Errorf("StartTime of a missing process: %v, want no such process", err)
	}
	if _, ino, _, err := PIDNamespace(); err != nil || ino == 0 {
		t.Errorf("PIDNamespace: ino %d, %v", ino, err)
	}
	if n, err := PIDMax(); err != nil || n < 300 {
		t.Errorf("PIDMax: %d, %v", n, err)
	}
}
