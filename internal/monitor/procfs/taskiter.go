//go:build linux

package procfs

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
	"unsafe"

	"go.uber.org/zap"

	"github.com/contprof/contprof/bpf/procstat"
	"github.com/contprof/contprof/internal/profiler/privilege"
)

// The initial namespaces' inode numbers (PROC_PID_INIT_INO,
// PROC_TIME_INIT_INO in include/linux/proc_ns.h): the task iterator reports
// PIDs and boot times as the initial namespaces see them.
const (
	initPIDNamespace  = "pid:[4026531836]"
	initTimeNamespace = "time:[4026531834]"
)

type taskIter = procstat.Iterator

// Source reports which source the Scanner uses (SourceProc or SourceBPF).
func (s *Scanner) Source() Source {
	if s.iter != nil {
		return SourceBPF
	}
	return SourceProc
}

// chooseSource opens the task iterator when src allows it.
func (s *Scanner) chooseSource(src Source) error {
	switch src {
	case SourceProc:
		return nil
	case SourceAuto, SourceBPF:
	default:
		return fmt.Errorf("source: %d is not a known source", int(src))
	}
	err := s.sameNamespaces()
	if err == nil {
		s.iter, err = procstat.Open()
		err = privilege.Explain(err) // names capabilities, not RLIMIT_MEMLOCK
	}
	switch {
	case err == nil:
		s.logger.Info("Sampling processes with a BPF task iterator; /proc is read only for new processes")
		// The iterator reports affinity and cgroup changes (v2, and the
		// cpu controller's v1 or v2 cgroup), which trigger a refresh at
		// once; the periodic one is a safety net.
		s.refreshEvery = keyedRefreshFactor * s.refresh
	case src == SourceBPF:
		return fmt.Errorf("source %s: %w", src, err)
	default:
		s.logger.Info("Sampling processes from /proc/PID/stat (the BPF task iterator, which costs less, is unavailable)", zap.Error(err))
	}
	return nil
}

// sameNamespaces checks that this process and the procfs at ProcRoot see
// PIDs, and this process start times, as the initial namespaces do: the
// iterator reports them so. (ProcRoot/1/ns/pid may be unreadable even to
// root, so ProcRoot is checked by where its "self" points.)
func (s *Scanner) sameNamespaces() error {
	if ns, err := os.Readlink("/proc/self/ns/pid"); err != nil || ns != initPIDNamespace {
		return fmt.Errorf("this process is not in the initial PID namespace (%q, %v)", ns, err)
	}
	if self, err := os.Readlink(s.root + "/self"); err != nil || self != strconv.Itoa(os.Getpid()) {
		return fmt.Errorf("proc_root %q is not the initial PID namespace's (self is %q, %v)", s.root, self, err)
	}
	if ns, err := os.Readlink("/proc/self/ns/time"); err == nil && ns != initTimeNamespace {
		return fmt.Errorf("this process runs in a time namespace (%s)", ns)
	}
	return nil
}

// keyedRefreshFactor stretches CPURefresh when the iterator reports
// affinity and cgroup changes.
const keyedRefreshFactor = 30

// scanIter is Scan with the task iterator: one read returns every user
// process in PID order (kernel threads are left out in the kernel).
func (s *Scanner) scanIter(now time.Time) (Snapshot, error) {
	var err error
	if s.ibuf, err = s.iter.Read(s.ibuf[:0]); err != nil {
		return Snapshot{}, err
	}
	if s.afterList != nil {
		s.afterList()
	}
	out := s.samples[:0]
	var st statFields
	recs := procstat.Records(s.ibuf)
	for i := range recs {
		r := &recs[i]
		pid := int32(r.Tgid)
		st = statFields{
			comm:       commBytes(&r.Comm),
			state:      stateLetter(r.State, r.ExitState),
			ppid:       int32(r.Ppid),
			flags:      uint64(r.Flags),
			numThreads: int64(r.NrThreads),
			startTicks: r.StartBoottime / (1e9 / TicksPerSecond),
			rssPages:   r.RssPages,
		}
		if st.gone() {
			continue
		}
		p := s.identify(pid, s.procs[pid], &st, now)
		if key := (cpuKey{cgroup: r.CgroupId, cpuCgroup: r.CpuCgroupId, cpus: r.NrCpusAllowed}); key != p.cpuKey {
			if p.cpuKey != (cpuKey{}) {
				p.refreshAt = time.Time{} // moved or re-pinned: refresh now
			}
			p.cpuKey = key
		}
		if !p.hasSplit {
			// Start from the split /proc last showed, so both agree.
			p.split, p.hasSplit = cpuSplit{user: r.PrevUtime, system: r.PrevStime}, true
		}
		st.utimeNs, st.stimeNs = p.split.adjust(r.Runtime, r.Utime, r.Stime)
		out = s.appendSample(out, pid, p, &st, now)
	}
	return s.finish(now, out), nil
}

// commBytes is comm up to its NUL, viewed as bytes.
func commBytes(c *[16]int8) []byte {
	b := (*[16]byte)(unsafe.Pointer(c))[:]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}
