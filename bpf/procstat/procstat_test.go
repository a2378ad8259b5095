//go:build linux

package procstat

import (
	"os"
	"testing"
)

// TestLoadAttach proves the iterator passes the verifier and attaches on
// this kernel, reports this process with its figures, and runs again for
// every Read.
func TestLoadAttach(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CONTPROF_REQUIRE_EBPF") == "1" {
			t.Fatal("CONTPROF_REQUIRE_EBPF=1 but not root")
		}
		t.Skip("needs root to load eBPF programs")
	}
	it, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var buf []byte
	var last uint64
	for round := range 3 {
		if buf, err = it.Read(buf[:0]); err != nil {
			t.Fatal(err)
		}
		var self *Record
		recs := Records(buf)
		for i := range recs {
			if i > 0 && recs[i].Tgid <= recs[i-1].Tgid {
				t.Fatalf("round %d: pid %d after %d: not in PID order", round, recs[i].Tgid, recs[i-1].Tgid)
			}
			if int(recs[i].Tgid) == os.Getpid() {
				self = &recs[i]
			}
		}
		if self == nil {
			t.Fatalf("round %d: this process (%d) not among %d records", round, os.Getpid(), len(recs))
		}
		if self.Ppid != uint32(os.Getppid()) || self.NrThreads < 1 || self.RssPages <= 0 || self.Runtime == 0 || self.Runtime < last {
			t.Fatalf("round %d: this process: %+v (previous run time %d)", round, *self, last)
		}
		last = self.Runtime
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
}
