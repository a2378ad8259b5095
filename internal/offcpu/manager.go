//go:build linux

package offcpu

import (
	"sync"
	"time"
)

// Manager loads the profiler when the first process is added and unloads
// it when the last subscription closes, so that nothing runs on the
// scheduler's hot path while no off-CPU task does. It is safe for
// concurrent use.
type Manager struct {
	opts Options

	mu       sync.Mutex
	profiler *Profiler
}

// NewManager returns a Manager; opts are checked now so that a bad
// configuration is reported at start, not at the first task.
func NewManager(opts Options) (*Manager, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return &Manager{opts: opts}, nil
}

// MinBlock is the shortest block counted.
func (m *Manager) MinBlock() time.Duration { return m.opts.MinBlock }

// Acquire starts recording pid for a new subscriber, loading the profiler
// if it is not loaded.
func (m *Manager) Acquire(pid int) (*Subscription, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.profiler == nil {
		p, err := Open(m.opts)
		if err != nil {
			return nil, err
		}
		m.profiler = p
	}
	sub, err := m.profiler.Add(pid)
	if err != nil {
		if m.profiler.idle() {
			_ = m.profiler.Close()
			m.profiler = nil
		}
		return nil, err
	}
	sub.release = m.release
	return sub, nil
}

func (m *Manager) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.profiler != nil && m.profiler.idle() {
		_ = m.profiler.Close()
		m.profiler = nil
	}
}

// Loaded reports whether the profiler is in the kernel now.
func (m *Manager) Loaded() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.profiler != nil
}

// Close unloads the profiler; open subscriptions return ErrClosed.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.profiler == nil {
		return nil
	}
	err := m.profiler.Close()
	m.profiler = nil
	return err
}
