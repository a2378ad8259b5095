//go:build linux

package tcpevents

import (
	"os"
	"strings"
	"testing"
)

// TestLoadAttach proves the programs pass the verifier and attach on this
// kernel, and that closing leaves nothing attached.
func TestLoadAttach(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CONTPROF_REQUIRE_EBPF") == "1" {
			t.Fatal("CONTPROF_REQUIRE_EBPF=1 but not root")
		}
		t.Skip("needs root to load eBPF programs")
	}
	objs, err := Load(Config{MaxFlows: 1024, RingBufferBytes: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	for _, flavour := range []string{AttachBTF, AttachAuto} {
		links, used, err := objs.Attach(flavour)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("attached as %s", used)
		for _, l := range links {
			if err := l.Close(); err != nil {
				t.Error(err)
			}
		}
	}
	if _, _, err := objs.Attach("kprobe"); err == nil || !strings.Contains(err.Error(), `"kprobe"`) {
		t.Errorf("Attach(kprobe) = %v, want an error naming it", err)
	}
	if got := objs.Flows.MaxEntries(); got != 1024 {
		t.Errorf("flows max entries = %d, want 1024", got)
	}
}
