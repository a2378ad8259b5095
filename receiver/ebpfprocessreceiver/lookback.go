//go:build linux

package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/monitor/procfs"
	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/lookback"
	"github.com/contprof/contprof/internal/profiler/offcpu"
	"github.com/contprof/contprof/internal/profiler/privilege"
	"github.com/contprof/contprof/receiver/ebpfprocessreceiver/internal/metadata"
)

var _ control.LookbackReporter = (*executor)(nil)

// lookbackSync keeps the lookback record in step with the policies: every
// scrape it selects, from the scanned processes and their attributes, those
// some on_cpu (or, opted in, off_cpu) policy with a lookback selects (the
// longest lookback per target wins) and hands that to the recorder, which
// starts and stops recording them.
type lookbackSync struct {
	rec    *lookback.Recorder
	logger *zap.Logger

	// cache holds each process identity's lookback for one policy set;
	// next replaces it every scrape (forgetting processes that are gone).
	set         *policy.Set
	cache, next map[*procfs.Info]lookbacks
	dropped     uint64
	// offCPU is whether off_cpu lookback may be recorded (the receiver has
	// the off-CPU privileges).
	offCPU bool

	// pending carries the newest selection to the goroutine applying it:
	// the first process loads the sampler, which must not hold up the
	// scrape (and with it every policy's data).
	pending chan lookback.Selection
	stop    chan struct{}
	done    chan struct{}
}

// lookbacks are one process's longest on_cpu and off_cpu lookbacks.
type lookbacks struct{ on, off time.Duration }

func newLookbackSync(cfg LookbackConfig, off OffCPUConfig, offAllowed bool, logger *zap.Logger) (*lookbackSync, error) {
	rec, err := lookback.New(lookback.Options{Frequency: cfg.Frequency, MaxMemory: cfg.MaxMemory,
		OffCPU: offcpu.Options{MinBlock: off.MinBlock}})
	if err != nil {
		return nil, err
	}
	l := &lookbackSync{
		rec: rec, logger: logger, offCPU: offAllowed, cache: map[*procfs.Info]lookbacks{}, next: map[*procfs.Info]lookbacks{},
		pending: make(chan lookback.Selection, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go l.apply()
	return l, nil
}

func (l *lookbackSync) apply() {
	defer close(l.done)
	for {
		select {
		case <-l.stop:
			return
		case sel := <-l.pending:
			if err := l.rec.Sync(sel); err != nil {
				l.logger.Warn("Lookback record not started for some processes", zap.Error(privilege.Explain(err)))
			}
		}
	}
}

// sync selects from one scrape's processes.
func (l *lookbackSync) sync(ctx context.Context, snap *procfs.Snapshot, set *policy.Set, tb *metadata.TelemetryBuilder) {
	if set != l.set {
		l.set = set
		clear(l.cache)
	}
	sel := lookback.Selection{}
	for i := range snap.Samples {
		in := snap.Samples[i].Info
		d, ok := l.cache[in]
		if !ok {
			d = selectedLookback(set, in)
			if !l.offCPU {
				d.off = 0
			}
		}
		l.next[in] = d
		if d.on > 0 || d.off > 0 {
			sel[int(in.PID)] = lookback.Selected{Lookback: d.on, OffCPU: d.off, Start: in.StartTime}
		}
	}
	l.cache, l.next = l.next, l.cache
	clear(l.next)
	// Only the scraper sends: after taking a stale selection out, the
	// send cannot block.
	select {
	case <-l.pending:
	default:
	}
	l.pending <- sel
	if tb != nil {
		st := l.rec.Stats()
		tb.ReceiverEbpfprocessLookbackMemory.Record(ctx, st.Bytes)
		tb.ReceiverEbpfprocessLookbackProcesses.Record(ctx, int64(st.Processes))
		if d := st.Dropped - l.dropped; d > 0 {
			tb.ReceiverEbpfprocessLookbackDroppedSamples.Add(ctx, int64(d))
		}
		l.dropped = st.Dropped
	}
}

// selectedLookback is the longest lookback of the on_cpu and of the
// off_cpu policies whose selector matches the process (0: none).
func selectedLookback(set *policy.Set, in *procfs.Info) lookbacks {
	var d lookbacks
	if set == nil {
		return d
	}
	for i := range set.Policies {
		p := &set.Policies[i]
		var cur *time.Duration
		switch p.Target {
		case policy.TargetOnCPU:
			cur = &d.on
		case policy.TargetOffCPU:
			cur = &d.off
		default:
			continue
		}
		if p.Lookback > *cur && p.Selector.Matches(in.Attr) {
			*cur = p.Lookback
		}
	}
	return d
}

func (l *lookbackSync) close() {
	close(l.stop)
	<-l.done
	_ = l.rec.Close()
}

// prelude is the record of a task's process before its trigger, or nil:
// for on_cpu and off_cpu tasks of a policy with a lookback that have a
// trigger time.
func (e *executor) prelude(t control.Task, pid int, started time.Time) *lookback.Prelude {
	l := e.r.lookback
	if l == nil || len(t.Causes) == 0 || e.r.ctrl == nil {
		return nil
	}
	p := e.r.ctrl.Policies().Lookup(t.Policy)
	if p == nil || p.Lookback <= 0 {
		return nil
	}
	switch t.Target {
	case policy.TargetOnCPU:
		return l.rec.Prelude(pid, t.Causes[0].At, p.Lookback, started, e.r.cfg.Profiling.OnCPU.Frequency, e.sym)
	case policy.TargetOffCPU:
		return l.rec.PreludeOffCPU(pid, t.Causes[0].At, p.Lookback, started, e.sym)
	}
	return nil
}

// applyPrelude returns emit that puts pre (if any) into the first report.
func applyPrelude(pre *lookback.Prelude, emit func(*profiles.Profile)) func(*profiles.Profile) {
	if pre == nil {
		return emit
	}
	first := true
	return func(p *profiles.Profile) {
		if first {
			pre.Apply(p)
			first = false
		}
		emit(p)
	}
}

// LookbackCoverage is what the lookback record holds per process.
func (e *executor) LookbackCoverage() []control.LookbackCoverage {
	l := e.r.lookback
	if l == nil {
		return nil
	}
	return l.rec.Coverage()
}
