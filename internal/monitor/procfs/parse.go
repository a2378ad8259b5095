package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
)

// TicksPerSecond is USER_HZ, the unit of the CPU times and the start time in
// /proc/PID/stat. sysconf(_SC_CLK_TCK) is a libc call that x/sys does not
// offer; the kernel fixes USER_HZ at 100 on every architecture Linux
// supports today (the ABI would break otherwise), so it is a constant here.
const TicksPerSecond = 100

// exited reports whether the process has exited: a zombie (or dead) thread
// group. A zombie leader with threads still running (its main thread
// called pthread_exit) is a live process: the state is the leader's, the
// thread count the group's.
func (st *statFields) exited() bool {
	return st.state == 'Z' && st.numThreads <= 1 || st.state == 'X' || st.state == 'x'
}

// pfKthread is PF_KTHREAD from include/linux/sched.h.
const pfKthread = 0x00200000

// statFields is what one scan needs from /proc/PID/stat.
type statFields struct {
	comm       []byte // aliases the read buffer
	state      byte
	ppid       int32
	flags      uint64
	utimeNs    uint64 // /proc's clock ticks, in nanoseconds
	stimeNs    uint64
	numThreads int64
	startTicks uint64 // since boot
	rssPages   int64
}

var errStatFormat = errors.New("malformed /proc/PID/stat")

// parseStat parses /proc/PID/stat (proc(5)). comm may contain spaces and
// parentheses, so the fields start after the last ')'.
func parseStat(b []byte, st *statFields) error {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open || end+2 > len(b) {
		return errStatFormat
	}
	st.comm = b[open+1 : end]
	b = b[end+2:]
	// Field numbers below follow proc(5), where state is field 3.
	for field := 3; field <= 24; field++ {
		i := bytes.IndexByte(b, ' ')
		var f []byte
		if i < 0 {
			f, b = b, nil
		} else {
			f, b = b[:i], b[i+1:]
		}
		if len(f) == 0 {
			return errStatFormat
		}
		switch field {
		case 3:
			st.state = f[0]
		case 4:
			st.ppid = int32(atoi(f))
		case 9:
			st.flags = atou(f)
		case 14:
			st.utimeNs = atou(f) * (1e9 / TicksPerSecond)
		case 15:
			st.stimeNs = atou(f) * (1e9 / TicksPerSecond)
		case 20:
			st.numThreads = atoi(f)
		case 22:
			st.startTicks = atou(f)
		case 24:
			st.rssPages = atoi(f)
		}
		if b == nil && field < 24 {
			return errStatFormat
		}
	}
	return nil
}

func atou(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + uint64(c-'0')
	}
	return v
}

func atoi(b []byte) int64 {
	if len(b) > 0 && b[0] == '-' {
		return -int64(atou(b[1:]))
	}
	return int64(atou(b))
}

// parseLoad1 parses the first field of /proc/loadavg ("0.52 0.58 ...").
func parseLoad1(b []byte) (float64, bool) {
	var whole, frac, scale float64 = 0, 0, 1
	seenDot, digits := false, 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			digits++
			if seenDot {
				scale *= 10
				frac = frac*10 + float64(c-'0')
			} else {
				whole = whole*10 + float64(c-'0')
			}
		case c == '.' && !seenDot:
			seenDot = true
		default:
			return whole + frac/scale, digits > 0
		}
	}
	return whole + frac/scale, digits > 0
}

// nextLine splits b at its first newline: the line before it and the rest
// after it (nil when b holds no newline).
func nextLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// parseBootTime returns the btime line of /proc/stat, in seconds since the epoch.
func parseBootTime(b []byte) (int64, bool) {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		if rest, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			return atoi(bytes.TrimSpace(rest)), true
		}
	}
	return 0, false
}

// parseUID returns the real uid from the Uid: line of /proc/PID/status.
func parseUID(b []byte) (uint32, bool) {
	i := bytes.Index(b, []byte("\nUid:"))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(b[i+5:], " \t")
	if len(rest) == 0 || rest[0] < '0' || rest[0] > '9' {
		return 0, false
	}
	return uint32(atou(rest)), true
}

// parseCmdline turns the NUL-separated argv of /proc/PID/cmdline into one
// space-separated string, and returns argv[0] separately.
func parseCmdline(b []byte) (cmdline, argv0 string) {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return "", ""
	}
	a0 := b
	if i := bytes.IndexByte(b, 0); i >= 0 {
		a0 = b[:i]
	}
	s := make([]byte, len(b))
	for i, c := range b {
		if c == 0 {
			c = ' '
		}
		s[i] = c
	}
	return string(s), string(a0)
}

// cleanExe strips the marker the kernel appends to the exe link when the
// binary was replaced or removed after the process started.
func cleanExe(p string) string {
	return strings.TrimSuffix(p, " (deleted)")
}

func baseName(p string) string {
	if p == "" {
		return ""
	}
	return path.Base(p)
}

// envService extracts service.name and service.instance.id from a process
// environment (NUL-separated KEY=VALUE). OTEL_SERVICE_NAME wins over
// service.name inside OTEL_RESOURCE_ATTRIBUTES, as the SDK specification says.
func envService(b []byte) (name, instance string) {
	var fromAttrs string
	for len(b) > 0 {
		e := b
		if i := bytes.IndexByte(b, 0); i >= 0 {
			e, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if v, ok := bytes.CutPrefix(e, []byte("OTEL_SERVICE_NAME=")); ok {
			if s := strings.TrimSpace(string(v)); s != "" {
				name = s
			}
		} else if v, ok := bytes.CutPrefix(e, []byte("OTEL_RESOURCE_ATTRIBUTES=")); ok {
			n, inst := resourceAttrs(string(v))
			if n != "" {
				fromAttrs = n
			}
			if inst != "" {
				instance = inst
			}
		}
	}
	if name == "" {
		name = fromAttrs
	}
	return name, instance
}

// resourceAttrs parses the W3C-baggage-like OTEL_RESOURCE_ATTRIBUTES value:
// comma-separated key=value pairs with percent-encoded values.
func resourceAttrs(s string) (name, instance string) {
	for s != "" {
		var kv string
		kv, s, _ = strings.Cut(s, ",")
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		v = strings.TrimSpace(v)
		if k != "service.name" && k != "service.instance.id" {
			continue
		}
		if d, err := url.PathUnescape(v); err == nil {
			v = d
		}
		if v == "" {
			continue
		}
		if k == "service.name" {
			name = v
		} else {
			instance = v
		}
	}
	return name, instance
}

// OnlineCPUs lists /sys/devices/system/cpu/online ("0-3,8-11").
func OnlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, err
	}
	return ParseCPUList(strings.TrimSpace(string(b)))
}

// ParseCPUList parses a kernel CPU list such as "0-3,5,7-8" (the format of
// /sys/devices/system/cpu/online and cpuset files).
func ParseCPUList(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("bad CPU list %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("bad CPU list %q", s)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("bad CPU list %q", s)
	}
	return cpus, nil
}
