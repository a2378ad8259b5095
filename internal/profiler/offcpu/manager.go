//go:build linux

package offcpu

import (
	"time"

	"github.com/contprof/contprof/internal/profiler/lazyload"
)

// Manager loads the profiler when the first process is added and unloads
// it when the last subscription closes, so that nothing runs on the
// scheduler's hot path while no off-CPU task does. It is safe for
// concurrent use.
type Manager struct {
	opts   Options
	loader *lazyload.Loader[*Profiler]
}

// NewManager returns a Manager; opts are checked now so that a bad
// configuration is reported at start, not at the first task.
func NewManager(opts Options) (*Manager, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	open := func() (*Profiler, error) { return Open(opts) }
	return &Manager{opts: opts, loader: lazyload.New(open, (*Profiler).idle)}, nil
}

// MinBlock is the shortest block counted.
func (m *Manager) MinBlock() time.Duration { return m.opts.MinBlock }

// Acquire starts recording pid for a new subscriber, loading the profiler
// if it is not loaded.
func (m *Manager) Acquire(pid int) (*Subscription, error) {
	var sub *Subscription
	err := m.loader.Use(func(p *Profiler) (err error) {
		sub, err = p.Add(pid)
		return err
	})
	if err != nil {
		return nil, err
	}
	sub.release = m.loader.Release
	return sub, nil
}

// Loaded reports whether the profiler is in the kernel now.
func (m *Manager) Loaded() bool {
	_, ok := m.loader.Loaded()
	return ok
}

// Close unloads the profiler; open subscriptions return ErrClosed.
func (m *Manager) Close() error { return m.loader.Close() }
