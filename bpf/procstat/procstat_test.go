//go:build linux

package procstat_test

import (
	"os"
	"testing"

	"github.com/contprof/contprof/bpf/procstat"
	"github.com/contprof/contprof/internal/testhelper/proftest"
)

// TestLoadAttach proves the iterator passes the verifier and attaches on
// this kernel, reports this process with its figures, and runs again for
// every Read.
func TestLoadAttach(t *testing.T) {
	proftest.RequireEBPF(t, "the BPF task iterator")
	it, err := procstat.Open()
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
		var self *procstat.Record
		recs := procstat.Records(buf)
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
