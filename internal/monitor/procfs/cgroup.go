package procfs

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupMounts says where the CPU controller's files are. On a pure cgroup
// v2 host that is the unified hierarchy; on v1 and hybrid hosts the cpu
// controller lives in a v1 hierarchy whose mount option list contains "cpu".
type cgroupMounts struct {
	v2Root, v2Point string // mount root inside the hierarchy and mount point
	v1Root, v1Point string // v1 hierarchy carrying the cpu controller
}

// readCgroupMounts parses mountinfo (proc(5)): fields 4 and 5 are the root
// and mount point, and after the " - " separator come fstype, source and
// super options.
func readCgroupMounts(mountinfo string) cgroupMounts {
	var m cgroupMounts
	f, err := os.Open(mountinfo)
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf := strings.Fields(pre)
		qf := strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 {
			continue
		}
		switch qf[0] {
		case "cgroup2":
			if m.v2Point == "" {
				m.v2Root, m.v2Point = pf[3], unescapeMount(pf[4])
			}
		case "cgroup":
			for _, o := range strings.Split(qf[2], ",") {
				if o == "cpu" && m.v1Point == "" {
					m.v1Root, m.v1Point = pf[3], unescapeMount(pf[4])
				}
			}
		}
	}
	return m
}

// unescapeMount undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupInfo is what the /proc/PID/cgroup file tells us.
type cgroupInfo struct {
	cpuDir      string // directory holding the process's CPU quota files, "" if unknown
	v1          bool   // cpuDir uses cpu.cfs_quota_us rather than cpu.max
	containerID string
	podUID      string
}

// parseCgroup reads /proc/PID/cgroup lines "hierarchy-ID:controllers:path".
func parseCgroup(b []byte, m *cgroupMounts) cgroupInfo {
	var ci cgroupInfo
	var v2Path, v1Path string
	haveV2, haveV1 := false, false
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		first := bytes.IndexByte(line, ':')
		if first < 0 {
			continue
		}
		second := bytes.IndexByte(line[first+1:], ':')
		if second < 0 {
			continue
		}
		ctrls := line[first+1 : first+1+second]
		p := string(line[first+2+second:])
		if id := containerIDFromPath(p); id != "" && ci.containerID == "" {
			ci.containerID = id
		}
		if uid := podUIDFromPath(p); uid != "" && ci.podUID == "" {
			ci.podUID = uid
		}
		if len(ctrls) == 0 && string(line[:first]) == "0" {
			v2Path, haveV2 = p, true
			continue
		}
		for _, c := range bytes.Split(ctrls, []byte(",")) {
			if string(c) == "cpu" {
				v1Path, haveV1 = p, true
			}
		}
	}
	switch {
	case haveV1 && m.v1Point != "":
		ci.cpuDir, ci.v1 = mountedDir(m.v1Root, m.v1Point, v1Path), true
	case haveV2 && m.v2Point != "":
		ci.cpuDir = mountedDir(m.v2Root, m.v2Point, v2Path)
	}
	return ci
}

// mountedDir maps a cgroup path to a directory under the mount point. When
// the hierarchy is mounted from a sub-directory (a container without its own
// cgroup namespace), that prefix is stripped first.
func mountedDir(root, point, p string) string {
	if root != "/" && root != "" {
		if rest, ok := strings.CutPrefix(p, root); ok && (rest == "" || rest[0] == '/') {
			p = rest
		}
	}
	return filepath.Join(point, filepath.Clean("/"+p))
}

// cgroupCPUs returns the CPU bandwidth limit of dir in CPUs (0 when there is
// none). Parents limit their children too, so the smallest limit on the way
// up to stop (the mount point) wins.
func cgroupCPUs(dir, stop string, v1 bool) float64 {
	limit := 0.0
	for {
		var q float64
		if v1 {
			q = readV1Quota(dir)
		} else {
			q = readV2Max(dir)
		}
		if q > 0 && (limit == 0 || q < limit) {
			limit = q
		}
		if dir == stop || len(dir) <= len(stop) {
			return limit
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return limit
		}
		dir = parent
	}
}

// readV2Max parses cpu.max: "max 100000" or "<quota> <period>" in µs.
func readV2Max(dir string) float64 {
	b, err := os.ReadFile(filepath.Join(dir, "cpu.max"))
	if err != nil {
		return 0
	}
	return quotaCPUs(bytes.Fields(b))
}

func quotaCPUs(f [][]byte) float64 {
	if len(f) != 2 || string(f[0]) == "max" {
		return 0
	}
	q, err1 := strconv.ParseFloat(string(f[0]), 64)
	p, err2 := strconv.ParseFloat(string(f[1]), 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0
	}
	return q / p
}

// readV1Quota reads cpu.cfs_quota_us (-1 = unlimited) and cpu.cfs_period_us.
func readV1Quota(dir string) float64 {
	q, err := os.ReadFile(filepath.Join(dir, "cpu.cfs_quota_us"))
	if err != nil {
		return 0
	}
	p, err := os.ReadFile(filepath.Join(dir, "cpu.cfs_period_us"))
	if err != nil {
		return 0
	}
	return quotaCPUs([][]byte{bytes.TrimSpace(q), bytes.TrimSpace(p)})
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f'
}

// containerIDFromPath finds the last run of exactly 64 lowercase hex digits
// in a cgroup path. That covers docker ("/docker/<id>",
// "docker-<id>.scope"), containerd ("cri-containerd-<id>.scope",
// "/kubepods/…/pod…/<id>"), cri-o ("crio-<id>.scope") and podman
// ("libpod-<id>.scope") without a pattern per runtime.
func containerIDFromPath(p string) string {
	found := ""
	for i := 0; i < len(p); {
		if !isHex(p[i]) {
			i++
			continue
		}
		j := i
		for j < len(p) && isHex(p[j]) {
			j++
		}
		if j-i == 64 {
			found = p[i:j]
		}
		i = j
	}
	return found
}

// podUIDFromPath finds "pod<uid>" as written by the kubelet: with dashes
// under the cgroupfs driver (".../pod1b2c…-…/") and with underscores under
// the systemd driver ("kubepods-burstable-pod1b2c…_….slice"). The UID is
// returned in its canonical dashed form.
func podUIDFromPath(p string) string {
	found := ""
	for i := 0; ; {
		k := strings.Index(p[i:], "pod")
		if k < 0 {
			return found
		}
		start := i + k + 3
		if uid, ok := uuidAt(p, start); ok {
			found = uid
		}
		i = start
	}
}

func uuidAt(p string, i int) (string, bool) {
	if i+36 > len(p) {
		return "", false
	}
	if i+36 < len(p) && isHex(p[i+36]) {
		return "", false
	}
	b := []byte(p[i : i+36])
	for j, c := range b {
		switch j {
		case 8, 13, 18, 23:
			if c != '-' && c != '_' {
				return "", false
			}
			b[j] = '-'
		default:
			if !isHex(c) {
				return "", false
			}
		}
	}
	return string(b), true
}
