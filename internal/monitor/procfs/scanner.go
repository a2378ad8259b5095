//go:build linux

package procfs

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// DefaultCPURefresh is how often the CPUs available to a process (its
// affinity and its cgroup's quota) and its cgroup membership are re-read.
const DefaultCPURefresh = 10 * time.Second

// Config configures a Scanner. The zero value scans every process of the
// host's /proc.
type Config struct {
	// ProcRoot is the procfs mount to read, "/proc" by default (set it to
	// e.g. "/host/proc" when running in a container with the host's /proc
	// mounted).
	ProcRoot string
	// HostName is reported as host.name; os.Hostname() by default.
	HostName string
	// Include, when it has any criterion, keeps only processes that match
	// at least one of them. Exclude drops processes that match any of its
	// criteria and wins over Include.
	Include Filter
	Exclude Filter
	// OmitCommandLine leaves Info.CommandLine empty (command lines may hold
	// secrets). Command-line filters still work.
	OmitCommandLine bool
	// CPURefresh is how often per-process CPU availability and cgroup data
	// are re-read; DefaultCPURefresh when zero. With the task iterator they
	// are re-read as soon as it shows a new affinity or cgroup, and every
	// 30 CPURefresh otherwise.
	CPURefresh time.Duration
	// Logger receives permission problems, once per process identity,
	// and which Source a Scanner uses. Nil discards them.
	Logger *zap.Logger
	// Source is how processes are listed and sampled; SourceAuto (the
	// zero value) prefers the BPF task iterator.
	Source Source
}

// Filter selects processes. A process matches when any criterion matches.
type Filter struct {
	// Executables are exact executable names: the base name of the target
	// of /proc/PID/exe (so "sh" may be "dash"), else of argv[0], else comm.
	Executables []string
	// ExecutableRegex are RE2 expressions matched (unanchored) against the
	// executable name.
	ExecutableRegex []string
	// CommandLineRegex are RE2 expressions matched (unanchored) against the
	// space-joined command line.
	CommandLineRegex []string
	// PIDs are process ids.
	PIDs []int
}

func (f Filter) empty() bool {
	return len(f.Executables) == 0 && len(f.ExecutableRegex) == 0 && len(f.CommandLineRegex) == 0 && len(f.PIDs) == 0
}

type filter struct {
	any    bool
	names  map[string]struct{}
	nameRe []*regexp.Regexp
	cmdRe  []*regexp.Regexp
	pids   map[int32]struct{}
}

func compileFilter(field string, f Filter) (filter, error) {
	c := filter{any: !f.empty(), names: map[string]struct{}{}, pids: map[int32]struct{}{}}
	for i, n := range f.Executables {
		if n == "" {
			return c, fmt.Errorf("%s.executables[%d]: empty executable name", field, i)
		}
		c.names[n] = struct{}{}
	}
	for i, r := range f.ExecutableRegex {
		re, err := regexp.Compile(r)
		if err != nil {
			return c, fmt.Errorf("%s.executable_regex[%d] %q: %w", field, i, r, err)
		}
		c.nameRe = append(c.nameRe, re)
	}
	for i, r := range f.CommandLineRegex {
		re, err := regexp.Compile(r)
		if err != nil {
			return c, fmt.Errorf("%s.command_line_regex[%d] %q: %w", field, i, r, err)
		}
		c.cmdRe = append(c.cmdRe, re)
	}
	for i, p := range f.PIDs {
		if p <= 0 || p > 1<<31-1 {
			return c, fmt.Errorf("%s.pids[%d]: %d is not a valid process id", field, i, p)
		}
		c.pids[int32(p)] = struct{}{}
	}
	return c, nil
}

func (f *filter) match(pid int32, name, cmdline string) bool {
	if _, ok := f.pids[pid]; ok {
		return true
	}
	if _, ok := f.names[name]; ok {
		return true
	}
	for _, re := range f.nameRe {
		if re.MatchString(name) {
			return true
		}
	}
	for _, re := range f.cmdRe {
		if re.MatchString(cmdline) {
			return true
		}
	}
	return false
}

// ID identifies a process across PID reuse: a PID is only reused after its
// process is gone, so (PID, start time) never names two processes.
type ID struct {
	PID        int32
	StartTicks uint64 // start time in clock ticks since boot
}

// Info is what stays fixed for a process identity. A Scanner never modifies
// an Info it has returned: when something changes (exec, reparenting,
// cgroup move) the process gets a new *Info, so callers may cache derived
// data keyed by the pointer.
type Info struct {
	ID
	PPID      int32
	HostName  string
	StartTime time.Time // process.creation.time
	// ExePath is the target of /proc/PID/exe; empty when unreadable.
	ExePath string
	// ExeName is the base name of ExePath, else of argv[0], else comm.
	ExeName string
	// CommandLine is argv joined by spaces; empty when omitted or unreadable.
	CommandLine string
	// Owner is the user name of the real uid (the uid in decimal when it has
	// no name); empty when unreadable.
	Owner string
	// ServiceName is OTEL_SERVICE_NAME, else service.name from
	// OTEL_RESOURCE_ATTRIBUTES in the process environment, else ExeName.
	ServiceName string
	// ServiceNameFromEnv reports whether ServiceName came from the environment.
	ServiceNameFromEnv bool
	// ServiceInstanceID is service.instance.id from OTEL_RESOURCE_ATTRIBUTES.
	ServiceInstanceID string
	// ContainerID and PodUID come from the cgroup path.
	ContainerID string
	PodUID      string

	created string // StartTime formatted once
}

// CreationTime is StartTime as process.creation.time wants it: RFC 3339
// in UTC. It is computed once per identity.
func (in *Info) CreationTime() string {
	if in.created == "" {
		return formatCreation(in.StartTime)
	}
	return in.created
}

func formatCreation(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Attr returns a resource attribute by its semantic-convention name, so a
// policy selector can match an Info directly. The second result is false
// for unknown or empty attributes.
func (in *Info) Attr(key string) (string, bool) {
	var v string
	switch key {
	case "host.name":
		v = in.HostName
	case "process.pid":
		v = strconv.Itoa(int(in.PID))
	case "process.parent_pid":
		v = strconv.Itoa(int(in.PPID))
	case "process.executable.name":
		v = in.ExeName
	case "process.executable.path":
		v = in.ExePath
	case "process.command_line":
		v = in.CommandLine
	case "process.owner":
		v = in.Owner
	case "process.creation.time":
		v = in.CreationTime()
	case "service.name":
		v = in.ServiceName
	case "service.instance.id":
		v = in.ServiceInstanceID
	case "container.id":
		v = in.ContainerID
	case "k8s.pod.uid":
		v = in.PodUID
	}
	return v, v != ""
}

// Sample is one process at one scan.
type Sample struct {
	Info *Info
	// State is the state letter of /proc/PID/stat (R, S, D, T, ...).
	State byte
	// UserSeconds and SystemSeconds are the CPU time used since the start.
	UserSeconds, SystemSeconds float64
	// Utilization is the CPU time used since the previous scan divided by
	// the elapsed time and by CPUs, so 1 means every available CPU busy.
	// HasUtilization is false on the first sight of a process.
	Utilization    float64
	HasUtilization bool
	// CPUs is how many CPUs the process may use: the smaller of its
	// affinity mask and its cgroup's CPU quota (which may be fractional).
	CPUs float64
	// Threads is the number of threads.
	Threads int64
	// RSSBytes is the resident set size.
	RSSBytes int64
}

// CPUSeconds is user plus system CPU time.
func (s *Sample) CPUSeconds() float64 { return s.UserSeconds + s.SystemSeconds }

// Snapshot is the result of one Scan.
type Snapshot struct {
	Time     time.Time
	HostName string
	// Load1 is the 1-minute load average; HasLoad is false if unreadable.
	Load1   float64
	HasLoad bool
	// Samples are the included processes in PID order. The slice is reused
	// by the next Scan.
	Samples []Sample
}

// proc is the scanner's state for one live process identity.
type proc struct {
	info       *Info
	comm       string
	startTicks uint64
	included   bool
	gen        uint32
	// fd is /proc/PID/stat kept open (-1 if not): one pread per scan
	// instead of open, read and close.
	fd int
	// kernel marks a kernel thread: not reported, and only re-checked
	// when its /proc inode changes or at refreshAt.
	kernel bool
	ino    uint64
	// retry asks for another reload: the process was caught inside execve,
	// after the parent resumed but before the kernel had written the new
	// argv and environment, so they read as empty.
	retry      bool
	emptyReads uint8
	logged     bool // a permission problem was logged for this identity

	cpuNs   uint64 // user+system CPU time at the last scan
	last    time.Time
	hasLast bool
	// split is the user/system split last reported (BPF source only),
	// kept monotonic as the kernel's cputime_adjust keeps its own.
	split    cpuSplit
	hasSplit bool

	affinity  float64
	cpuDir    string
	cpuV1     bool
	refreshAt time.Time
	// cpuKey is what the task iterator says of the process's affinity
	// and cgroup; a change triggers refreshCPU at once.
	cpuKey cpuKey
}

// cpuKey changes when a process's affinity mask or cgroups change.
type cpuKey struct {
	cgroup, cpuCgroup uint64 // v2; the cpu controller's (v1 or v2)
	cpus              int32
}

type quotaEntry struct {
	cpus   float64
	readAt time.Time
	gen    uint32
}

// Scanner discovers processes and samples them. It is not safe for
// concurrent use. It keeps /proc/PID/stat of tracked processes open (up to
// a quarter of the file descriptor limit, at most maxKeptFiles); Close
// releases them.
type Scanner struct {
	root       string
	host       string
	omitCmd    bool
	refresh    time.Duration
	logger     *zap.Logger
	include    filter
	exclude    filter
	bootTime   time.Time
	pageSize   int64
	onlineCPUs float64
	mounts     cgroupMounts

	dir  *procDir
	dbuf []byte
	// iter is the BPF task iterator (nil: Scan reads /proc/PID/stat);
	// ibuf holds its output.
	iter *taskIter
	ibuf []byte
	// refreshEvery is how often refreshCPU runs for a process that shows
	// no change (refresh, or much longer when the iterator reports every
	// change that matters).
	refreshEvery time.Duration
	pids         []int32
	inos         []uint64
	kept         int // open descriptors in procs
	maxKept      int
	procs        map[int32]*proc
	denied       map[int32]uint32 // PIDs whose stat is unreadable, already logged
	quotas       map[string]*quotaEntry
	users        *userCache
	samples      []Sample
	gen          uint32
	// lastWarn and deniedSince rate-limit the permission warning.
	lastWarn    time.Time
	deniedSince int

	afterList func() // test hook: runs between listing and reading
	statReads int    // reads of /proc/PID/stat, for tests
}

// New returns a Scanner, or an error naming the bad filter field or the
// unreadable /proc.
func New(cfg Config) (*Scanner, error) {
	s := &Scanner{
		root:     cfg.ProcRoot,
		host:     cfg.HostName,
		omitCmd:  cfg.OmitCommandLine,
		refresh:  cfg.CPURefresh,
		logger:   cfg.Logger,
		pageSize: int64(os.Getpagesize()),
		dbuf:     make([]byte, 32<<10),
		procs:    map[int32]*proc{},
		denied:   map[int32]uint32{},
		quotas:   map[string]*quotaEntry{},
		users:    newUserCache(),
	}
	if s.root == "" {
		s.root = "/proc"
	}
	if s.refresh <= 0 {
		s.refresh = DefaultCPURefresh
	}
	if s.logger == nil {
		s.logger = zap.NewNop()
	}
	var err error
	if s.include, err = compileFilter("include", cfg.Include); err != nil {
		return nil, err
	}
	if s.exclude, err = compileFilter("exclude", cfg.Exclude); err != nil {
		return nil, err
	}
	if s.host == "" {
		if s.host, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("host name: %w", err)
		}
	}
	if s.dir, err = openProcDir(s.root); err != nil {
		return nil, fmt.Errorf("proc_root %q: %w", s.root, err)
	}
	b, err := s.dir.read(-1, "stat")
	if err != nil {
		s.dir.close()
		return nil, fmt.Errorf("proc_root %q: reading stat: %w", s.root, err)
	}
	bt, ok := parseBootTime(b)
	if !ok {
		s.dir.close()
		return nil, fmt.Errorf("proc_root %q: no btime line in stat", s.root)
	}
	s.bootTime = time.Unix(bt, 0)
	s.onlineCPUs = onlineCPUs()
	s.mounts = readCgroupMounts("/proc/self/mountinfo")
	s.maxKept = maxKeptFiles
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur/4 < uint64(s.maxKept) {
		s.maxKept = int(rl.Cur / 4)
	}
	s.refreshEvery = s.refresh
	if err := s.chooseSource(cfg.Source); err != nil {
		s.dir.close()
		return nil, err
	}
	return s, nil
}

// maxKeptFiles bounds the stat files kept open; beyond it processes are
// read with open, read and close each scan.
const maxKeptFiles = 8192

// Close releases the scanner's file descriptors and its task iterator.
func (s *Scanner) Close() error {
	for _, p := range s.procs {
		s.closeFD(p)
	}
	var err error
	if s.iter != nil {
		err = s.iter.Close()
		s.iter = nil
	}
	return errors.Join(err, s.dir.close())
}

func (s *Scanner) closeFD(p *proc) {
	if p.fd >= 0 {
		unix.Close(p.fd)
		p.fd = -1
		s.kept--
	}
}

// Scan lists the processes alive now and samples the included ones. now
// should come from time.Now() (its monotonic reading times the interval).
// Processes that exit while being read are skipped; the only error is
// failing to list /proc itself.
func (s *Scanner) Scan(now time.Time) (Snapshot, error) {
	s.gen++
	if s.iter != nil {
		return s.scanIter(now)
	}
	var err error
	s.pids, s.inos, err = s.dir.listPIDs(s.pids[:0], s.inos[:0], s.dbuf)
	if err != nil {
		return Snapshot{}, fmt.Errorf("listing %s: %w", s.root, err)
	}
	if s.afterList != nil {
		s.afterList()
	}
	out := s.samples[:0]
	var st statFields
	for i, pid := range s.pids {
		p := s.procs[pid]
		if p != nil && p.kernel {
			if p.ino == s.inos[i] && now.Before(p.refreshAt) {
				p.gen = s.gen
				continue
			}
			delete(s.procs, pid)
			p = nil
		}
		s.statReads++
		var b []byte
		if p != nil && p.fd >= 0 {
			var err error
			if b, err = s.dir.pread(p.fd); err != nil || len(b) == 0 {
				// The process we knew is gone; the PID may already be a new one.
				s.closeFD(p)
				delete(s.procs, pid)
				p, b = nil, nil
			}
		}
		fd := -1
		if b == nil {
			var err error
			b, fd, err = s.dir.readKeep(pid, "stat", s.kept < s.maxKept)
			if err != nil {
				if isDenied(err) {
					s.noteDeniedStat(pid, err)
				}
				continue
			}
			if fd >= 0 {
				s.kept++
			}
		}
		if len(b) == 0 || parseStat(b, &st) != nil {
			s.closeNew(fd)
			continue // exited between open and read
		}
		if st.flags&pfKthread != 0 {
			s.closeNew(fd)
			s.procs[pid] = &proc{kernel: true, fd: -1, ino: s.inos[i], gen: s.gen,
				startTicks: st.startTicks, refreshAt: now.Add(s.refresh)}
			continue
		}
		if st.gone() {
			s.closeNew(fd)
			continue
		}
		p = s.identify(pid, p, &st, now)
		if fd >= 0 {
			s.closeFD(p)
			p.fd = fd
		}
		out = s.appendSample(out, pid, p, &st, now)
	}
	return s.finish(now, out), nil
}

// gone reports a process that is as good as exited. A zombie has released
// its memory and will never run again; only its parent's wait is pending.
// It is skipped like an exited process. A zombie thread-group leader whose
// other threads still run (num_threads > 1) is still a live process and is
// kept.
func (st *statFields) gone() bool {
	return st.state == 'X' || st.state == 'x' || (st.state == 'Z' && st.numThreads <= 1)
}

// identify returns the state of the process pid given a fresh reading st
// and its known state p (nil when none): new state for a new identity
// (p's start time differs: the PID was reused), p updated after an exec or
// reparenting otherwise.
func (s *Scanner) identify(pid int32, p *proc, st *statFields, now time.Time) *proc {
	if p != nil && p.startTicks != st.startTicks {
		s.closeFD(p) // PID reused: a new identity
		p = nil
	}
	if p == nil {
		p = s.discover(pid, st, now)
		s.procs[pid] = p
	} else if string(st.comm) != p.comm || p.retry {
		// comm changes on execve (and prctl PR_SET_NAME): re-read the
		// executable, command line and environment.
		s.reload(p, pid, st, now)
	} else if st.ppid != p.info.PPID {
		ni := *p.info
		ni.PPID = st.ppid
		p.info = &ni
	}
	return p
}

// appendSample marks p as seen and appends its sample to out when it is
// included.
func (s *Scanner) appendSample(out []Sample, pid int32, p *proc, st *statFields, now time.Time) []Sample {
	p.gen = s.gen
	if !p.included {
		return out
	}
	if !now.Before(p.refreshAt) {
		s.refreshCPU(p, pid, now)
	}
	cpus := s.cpus(p, now)
	cpuNs := st.utimeNs + st.stimeNs
	smp := Sample{
		Info:          p.info,
		State:         st.state,
		UserSeconds:   float64(st.utimeNs) / 1e9,
		SystemSeconds: float64(st.stimeNs) / 1e9,
		CPUs:          cpus,
		Threads:       st.numThreads,
		RSSBytes:      st.rssPages * s.pageSize,
	}
	if p.hasLast {
		if dt := now.Sub(p.last).Seconds(); dt > 0 && cpuNs >= p.cpuNs {
			smp.Utilization = float64(cpuNs-p.cpuNs) / 1e9 / dt / cpus
			smp.HasUtilization = true
		}
	}
	p.cpuNs, p.last, p.hasLast = cpuNs, now, true
	return append(out, smp)
}

// finish ends a scan: keeps the samples' buffer, forgets what is gone and
// adds the load average.
func (s *Scanner) finish(now time.Time, out []Sample) Snapshot {
	s.samples = out
	s.forget()
	s.dir.shrink()

	snap := Snapshot{Time: now, HostName: s.host, Samples: out}
	if b, err := s.dir.read(-1, "loadavg"); err == nil {
		snap.Load1, snap.HasLoad = parseLoad1(b)
	}
	return snap
}

// closeNew closes a descriptor readKeep just opened and counted.
func (s *Scanner) closeNew(fd int) {
	if fd >= 0 {
		unix.Close(fd)
		s.kept--
	}
}

// forget drops the state of processes not seen in this scan.
func (s *Scanner) forget() {
	for pid, p := range s.procs {
		if p.gen != s.gen {
			s.closeFD(p)
			delete(s.procs, pid)
		}
	}
	for pid, g := range s.denied {
		if g != s.gen {
			delete(s.denied, pid)
		}
	}
	for dir, q := range s.quotas {
		if q.gen != s.gen && s.gen-q.gen > 2 {
			delete(s.quotas, dir)
		}
	}
}

func (s *Scanner) noteDeniedStat(pid int32, err error) {
	if _, ok := s.denied[pid]; !ok {
		s.warnDenied(pid, "", []string{"stat"}, err)
	}
	s.denied[pid] = s.gen
}

// deniedWarnEvery rate-limits the permission warning: one process is named
// at warn level per interval (with how many others were hit since), the
// rest go to debug level, so a host full of unreadable processes does not
// flood the log while the operator still learns which process and file.
const deniedWarnEvery = time.Minute

// warnDenied reports that files of one process could not be read. Each
// process identity is reported once (the callers ensure it).
func (s *Scanner) warnDenied(pid int32, exe string, files []string, err error) {
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = s.root + "/" + strconv.Itoa(int(pid)) + "/" + f
	}
	fields := []zap.Field{zap.Int32("pid", pid), zap.String("executable", exe), zap.Strings("files", paths), zap.Error(err)}
	now := time.Now()
	if !s.lastWarn.IsZero() && now.Sub(s.lastWarn) < deniedWarnEvery {
		s.deniedSince++
		s.logger.Debug("cannot read some process details", fields...)
		return
	}
	if s.deniedSince > 0 {
		fields = append(fields, zap.Int("other_processes_since_last_warning", s.deniedSince))
	}
	s.lastWarn, s.deniedSince = now, 0
	s.logger.Warn("Permission denied reading "+strings.Join(paths, ", ")+
		"; this process's attributes are incomplete (run as root or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH; further processes are named at most once a minute)",
		fields...)
}

// maxEmptyReads is how many scans in a row a process with an empty
// command line is re-read before it is taken as it is.
const maxEmptyReads = 3

// discover builds the state of a process seen for the first time.
func (s *Scanner) discover(pid int32, st *statFields, now time.Time) *proc {
	p := &proc{startTicks: st.startTicks, fd: -1}
	s.reload(p, pid, st, now)
	return p
}

// reload (re)reads everything about a process identity that a scan does
// not read every time. st.comm aliases the read buffer, so it is copied
// before any other read.
func (s *Scanner) reload(p *proc, pid int32, st *statFields, now time.Time) {
	p.comm = string(st.comm)
	in := &Info{
		ID:        ID{PID: pid, StartTicks: st.startTicks},
		PPID:      st.ppid,
		HostName:  s.host,
		StartTime: s.bootTime.Add(time.Duration(st.startTicks) * (time.Second / TicksPerSecond)),
	}
	in.created = formatCreation(in.StartTime)
	var denied []string
	var deniedErr error
	note := func(file string, err error) {
		if isDenied(err) {
			denied = append(denied, file)
			deniedErr = err
		}
	}

	exe, err := s.dir.readlink(pid, "exe")
	note("exe", err)
	in.ExePath = cleanExe(exe)
	var cmdline, argv0 string
	p.retry = false
	if b, err := s.dir.read(pid, "cmdline"); err == nil {
		cmdline, argv0 = parseCmdline(b)
		// A few processes really have an empty command line; give up on
		// them after a few scans.
		if cmdline == "" && p.emptyReads < maxEmptyReads {
			p.emptyReads++
			p.retry = true
		}
	} else {
		note("cmdline", err)
	}
	switch {
	case in.ExePath != "":
		in.ExeName = baseName(in.ExePath)
	case argv0 != "":
		in.ExeName = baseName(argv0)
	default:
		in.ExeName = p.comm
	}
	p.included = (!s.include.any || s.include.match(pid, in.ExeName, cmdline)) &&
		!(s.exclude.any && s.exclude.match(pid, in.ExeName, cmdline))
	if !p.included {
		p.info = in // kept to notice exec and reparenting; never returned
		return
	}
	if !s.omitCmd {
		in.CommandLine = cmdline
	}
	if b, err := s.dir.read(pid, "status"); err == nil {
		if uid, ok := parseUID(b); ok {
			in.Owner = s.users.name(uid, now)
		}
	} else {
		note("status", err)
	}
	if b, err := s.dir.read(pid, "environ"); err == nil {
		in.ServiceName, in.ServiceInstanceID = envService(b)
		in.ServiceNameFromEnv = in.ServiceName != ""
	} else {
		note("environ", err)
	}
	if in.ServiceName == "" {
		in.ServiceName = in.ExeName
	}
	p.info = in
	s.refreshCPU(p, pid, now)
	if len(denied) > 0 && !p.logged {
		p.logged = true
		s.warnDenied(pid, in.ExeName, denied, deniedErr)
	}
}

// refreshCPU re-reads the affinity mask and cgroup membership. Container
// and pod attributes come from the cgroup, so a move yields a new Info.
func (s *Scanner) refreshCPU(p *proc, pid int32, now time.Time) {
	// Spread refreshes of processes discovered together over the interval.
	jitter := time.Duration(int64(pid)%1024) * s.refresh / 2048
	p.refreshAt = now.Add(s.refreshEvery - jitter)

	var set unix.CPUSet
	if err := unix.SchedGetaffinity(int(pid), &set); err == nil && set.Count() > 0 {
		p.affinity = float64(set.Count())
	} else if p.affinity == 0 {
		p.affinity = s.onlineCPUs
	}
	b, err := s.dir.read(pid, "cgroup")
	if err != nil {
		return
	}
	ci := parseCgroup(b, &s.mounts)
	p.cpuDir, p.cpuV1 = ci.cpuDir, ci.v1
	if ci.containerID != p.info.ContainerID || ci.podUID != p.info.PodUID {
		ni := *p.info
		ni.ContainerID, ni.PodUID = ci.containerID, ci.podUID
		p.info = &ni
	}
}

// cpus returns the CPUs available to p: its affinity, capped by the CPU
// quota of its cgroup (cached per cgroup, re-read every refresh interval).
func (s *Scanner) cpus(p *proc, now time.Time) float64 {
	c := p.affinity
	if p.cpuDir != "" {
		q := s.quotas[p.cpuDir]
		if q == nil || now.Sub(q.readAt) >= s.refresh {
			stop := s.mounts.v2Point
			if p.cpuV1 {
				stop = s.mounts.v1Point
			}
			if q == nil {
				q = &quotaEntry{}
				s.quotas[p.cpuDir] = q
			}
			q.cpus, q.readAt = cgroupCPUs(p.cpuDir, stop, p.cpuV1), now
		}
		q.gen = s.gen
		if q.cpus > 0 && q.cpus < c {
			c = q.cpus
		}
	}
	if c <= 0 {
		c = 1
	}
	return c
}

// onlineCPUs counts /sys/devices/system/cpu/online ("0-3,8-11"), the
// fallback when a process's affinity cannot be read.
func onlineCPUs() float64 {
	if cpus, err := OnlineCPUs(); err == nil && len(cpus) > 0 {
		return float64(len(cpus))
	}
	return float64(runtime.NumCPU())
}

// countCPUList counts the CPUs of a list; 0 when it is malformed.
func countCPUList(s string) int {
	cpus, err := ParseCPUList(s)
	if err != nil {
		return 0
	}
	return len(cpus)
}
