//go:build linux

package procfs

import "math/bits"

// cpuSplit is a process's CPU time split into user and system time (ns),
// as the kernel's cputime_adjust (kernel/sched/cputime.c) computes it for
// /proc/PID/stat: the precise run time (sum_exec_runtime) is divided in the
// proportion of the tick-sampled user and system times, and neither part
// ever decreases.
type cpuSplit struct {
	user, system uint64
}

// adjust splits rtime, the precise CPU time, by the sampled user and
// system times, keeping both parts monotonic, and returns the new split.
func (p *cpuSplit) adjust(rtime, user, system uint64) (uint64, uint64) {
	if p.user+p.system >= rtime {
		return p.user, p.system
	}
	var st uint64
	switch {
	case system == 0:
		st = 0
	case user == 0:
		st = rtime
	default:
		st = mulDiv(system, rtime, system+user)
		if st > rtime {
			st = rtime
		}
	}
	if st < p.system {
		st = p.system
	}
	ut := rtime - st
	if ut < p.user {
		ut = p.user
		st = rtime - ut
	}
	p.user, p.system = ut, st
	return ut, st
}

// mulDiv is a*b/c without overflow (c > 0 and a <= c, so the quotient
// fits).
func mulDiv(a, b, c uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi >= c {
		return ^uint64(0)
	}
	q, _ := bits.Div64(hi, lo, c)
	return q
}
