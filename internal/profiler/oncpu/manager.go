//go:build linux

package oncpu

import "github.com/contprof/contprof/internal/profiler/lazyload"

// Manager loads the sampler when the first process is added and unloads it
// when the last subscription closes, so that nothing runs in the kernel
// while no on-CPU task does. It is safe for concurrent use.
type Manager struct {
	opts   Options
	loader *lazyload.Loader[*Sampler]
}

// NewManager returns a Manager; opts are checked now so that a bad
// configuration is reported at start, not at the first task.
func NewManager(opts Options) (*Manager, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	open := func() (*Sampler, error) { return Open(opts) }
	return &Manager{opts: opts, loader: lazyload.New(open, (*Sampler).idle)}, nil
}

// Frequency is the sampling frequency in Hz.
func (m *Manager) Frequency() int { return m.opts.Frequency }

// Acquire starts sampling pid for a new subscriber, loading the sampler if
// it is not loaded.
func (m *Manager) Acquire(pid int) (*Subscription, error) {
	var sub *Subscription
	err := m.loader.Use(func(s *Sampler) (err error) {
		sub, err = s.Add(pid)
		return err
	})
	if err != nil {
		return nil, err
	}
	sub.release = m.loader.Release
	return sub, nil
}

// Loaded reports whether the sampler is in the kernel now.
func (m *Manager) Loaded() bool {
	_, ok := m.loader.Loaded()
	return ok
}

// Close unloads the sampler; open subscriptions return ErrClosed.
func (m *Manager) Close() error { return m.loader.Close() }
