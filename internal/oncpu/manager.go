//go:build linux

package oncpu

import (
	"sync"
)

// Manager loads the sampler when the first process is added and unloads it
// when the last subscription closes, so that nothing runs in the kernel
// while no on-CPU task does. It is safe for concurrent use.
type Manager struct {
	opts Options

	mu      sync.Mutex
	sampler *Sampler
}

// NewManager returns a Manager; opts are checked now so that a bad
// configuration is reported at start, not at the first task.
func NewManager(opts Options) (*Manager, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return &Manager{opts: opts}, nil
}

// Frequency is the sampling frequency in Hz.
func (m *Manager) Frequency() int { return m.opts.Frequency }

// Acquire starts sampling pid for a new subscriber, loading the sampler if
// it is not loaded.
func (m *Manager) Acquire(pid int) (*Subscription, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sampler == nil {
		s, err := Open(m.opts)
		if err != nil {
			return nil, err
		}
		m.sampler = s
	}
	sub, err := m.sampler.Add(pid)
	if err != nil {
		if m.sampler.idle() {
			_ = m.sampler.Close()
			m.sampler = nil
		}
		return nil, err
	}
	sub.release = m.release
	return sub, nil
}

func (m *Manager) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sampler != nil && m.sampler.idle() {
		_ = m.sampler.Close()
		m.sampler = nil
	}
}

// Loaded reports whether the sampler is in the kernel now.
func (m *Manager) Loaded() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sampler != nil
}

// Close unloads the sampler; open subscriptions return ErrClosed.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sampler == nil {
		return nil
	}
	err := m.sampler.Close()
	m.sampler = nil
	return err
}
