package ebpfprocessreceiver

import (
	"os"
	"strings"
	"testing"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/profiler/privilege"
)

// TestAdmitRefusesKernelThreads: a policy whose selector matches a kernel
// thread must not start a task that ends without a profile.
func TestAdmitRefusesKernelThreads(t *testing.T) {
	b, err := os.ReadFile("/proc/2/stat")
	if err != nil || !strings.Contains(string(b), "(kthreadd)") {
		t.Skip("pid 2 is not kthreadd here (not the initial pid namespace)")
	}
	e := &executor{r: &ebpfReceiver{priv: privilege.Probe("/sys")}}
	err = e.Admit(policy.TargetOnCPU, []control.Process{{PID: 2}})
	if err == nil || !strings.Contains(err.Error(), "process 2 (kthreadd) is a kernel thread") {
		t.Fatalf("Admit(kthreadd) = %v", err)
	}
	if err := e.Admit(policy.TargetOffCPU, []control.Process{{PID: os.Getpid()}}); err != nil {
		t.Fatalf("Admit(self) = %v", err)
	}
}
