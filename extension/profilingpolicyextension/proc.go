package profilingpolicyextension // import "github.com/contprof/contprof/extension/profilingpolicyextension"

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/monitor/procfs"
)

// userHZ is the kernel's fixed USER_HZ, the unit of /proc/PID/stat times.
const userHZ = 100

// processByPID identifies a process for a manual task. A monitored process
// with that pid (as the processor sees it, with all its resource
// attributes) is preferred, so that silences line up with policy tasks;
// otherwise the process is read from /proc.
func (e *profilingPolicy) processByPID(pid int) (control.Process, error) {
	p, err := procProcess("/proc", pid)
	if err != nil {
		return control.Process{}, err
	}
	procs, _ := e.processes()
	var best *control.Process
	for i := range procs {
		q := &procs[i].Process
		if q.PID != pid || (q.Host != "" && q.Host != p.Host) {
			continue
		}
		if best == nil || absDur(q.StartTime.Sub(p.StartTime)) < absDur(best.StartTime.Sub(p.StartTime)) {
			best = q
		}
	}
	// The pid may have been reused since the view last saw it.
	if best != nil && absDur(best.StartTime.Sub(p.StartTime)) <= 2*time.Second {
		return *best, nil
	}
	return p, nil
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// procProcess reads the identity of pid from a procfs mounted at root.
func procProcess(root string, pid int) (control.Process, error) {
	// A kernel thread or a zombie would run a task that ends without a
	// profile: refuse it up front, saying why.
	if err := procfs.CheckTarget(root, pid); procfs.IsNotProfilable(err) {
		return control.Process{}, fmt.Errorf("pid: %w", err)
	}
	dir := filepath.Join(root, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		if os.IsNotExist(err) {
			return control.Process{}, fmt.Errorf("pid: no process with pid %d", pid)
		}
		return control.Process{}, fmt.Errorf("pid: reading process %d: %w", pid, err)
	}
	// comm may contain spaces and parentheses: fields start after the last ')'.
	end := bytes.LastIndexByte(stat, ')')
	start := bytes.IndexByte(stat, '(')
	if start < 0 || end < start {
		return control.Process{}, fmt.Errorf("pid: %s/stat is malformed", dir)
	}
	fields := strings.Fields(string(stat[end+1:]))
	// fields[0] is field 3 (state); starttime is field 22.
	const startTimeField = 22 - 3
	if len(fields) <= startTimeField {
		return control.Process{}, fmt.Errorf("pid: %s/stat has %d fields, want at least 22", dir, len(fields)+2)
	}
	ticks, err := strconv.ParseUint(fields[startTimeField], 10, 64)
	if err != nil {
		return control.Process{}, fmt.Errorf("pid: %s/stat starttime %q: %w", dir, fields[startTimeField], err)
	}
	boot, err := bootTime(root)
	if err != nil {
		return control.Process{}, err
	}
	host, _ := os.Hostname()
	comm := string(stat[start+1 : end])
	attrs := map[string]any{
		"host.name":               host,
		"process.pid":             int64(pid),
		"process.executable.name": comm,
	}
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		attrs["process.executable.path"] = exe
		attrs["process.executable.name"] = filepath.Base(exe)
	}
	return control.Process{
		Host: host, PID: pid,
		StartTime:  boot.Add(time.Duration(ticks) * (time.Second / userHZ)),
		Attributes: attrs,
	}, nil
}

func bootTime(root string) (time.Time, error) {
	data, err := os.ReadFile(filepath.Join(root, "stat"))
	if err != nil {
		return time.Time{}, fmt.Errorf("reading boot time: %w", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "btime "); ok {
			sec, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("boot time %q: %w", rest, err)
			}
			return time.Unix(sec, 0), nil
		}
	}
	return time.Time{}, fmt.Errorf("no btime line in %s/stat", root)
}
