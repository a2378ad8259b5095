//go:build linux

package procfs

import (
	"fmt"
	"time"
)

// Resource returns the process's resource attributes under their
// semantic-convention names, with the types the ebpfprocess receiver
// emits them (pids int64, the rest strings; empty ones left out). It is the
// one description of a process: the receiver's metrics carry it, and the
// extension's manual tasks build the same process from it, so both name a
// process (and its silence) the same way.
func (in *Info) Resource() map[string]any {
	attrs := map[string]any{
		"host.name":               in.HostName,
		"process.pid":             int64(in.PID),
		"process.parent_pid":      int64(in.PPID),
		"process.executable.name": in.ExeName,
		"process.creation.time":   in.CreationTime(),
		"service.name":            in.ServiceName,
	}
	for k, v := range map[string]string{
		"process.executable.path": in.ExePath,
		"process.command_line":    in.CommandLine,
		"process.owner":           in.Owner,
		"service.instance.id":     in.ServiceInstanceID,
		"container.id":            in.ContainerID,
		"k8s.pod.uid":             in.PodUID,
	} {
		if v != "" {
			attrs[k] = v
		}
	}
	return attrs
}

// Lookup reads one process as a Scanner with cfg would see it (cfg's
// filters are replaced by the pid). The error names the pid when there is
// no such process.
func Lookup(cfg Config, pid int) (*Info, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("pid: %d is not a process id", pid)
	}
	cfg.Include, cfg.Exclude = Filter{PIDs: []int{pid}}, Filter{}
	cfg.Source = SourceProc // one read: not worth loading the task iterator
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	snap, err := s.Scan(time.Now())
	if err != nil {
		return nil, err
	}
	for i := range snap.Samples {
		if in := snap.Samples[i].Info; int(in.PID) == pid {
			return in, nil
		}
	}
	return nil, fmt.Errorf("pid: no process with pid %d (or it is a kernel thread or a zombie)", pid)
}
