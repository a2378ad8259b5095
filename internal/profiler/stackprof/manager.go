//go:build linux

package stackprof

import (
	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/lazyload"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/profiler/taskrun"
)

// Manager loads a profiler when the first process is added and unloads it
// when the last subscription closes, so that nothing runs in the kernel
// while no task needs it. It is safe for concurrent use.
type Manager[V Value[V]] struct {
	name   string
	loader *lazyload.Loader[*Profiler[V]]
}

// Source is a loaded event source: a profiler with the source's own
// methods (Stats...) around it.
type Source[V Value[V]] interface {
	Base() *Profiler[V]
}

// NewManager returns a Manager that loads with open; name is the task
// target it serves ("on_cpu").
func NewManager[V Value[V], S Source[V]](name string, open func() (S, error)) *Manager[V] {
	load := func() (*Profiler[V], error) {
		s, err := open()
		if err != nil {
			return nil, err
		}
		return s.Base(), nil
	}
	return &Manager[V]{name: name, loader: lazyload.New(load, (*Profiler[V]).idle)}
}

// NewManagerFor checks opts now (validate sets their defaults), so that a
// bad configuration is reported at start and not at the first task, and
// returns a Manager that opens the source with them.
func NewManagerFor[V Value[V], O any, S Source[V]](name string, opts O, validate func(*O) error, open func(O) (S, error)) (*Manager[V], error) {
	if err := validate(&opts); err != nil {
		return nil, err
	}
	return NewManager[V](name, func() (S, error) { return open(opts) }), nil
}

// Acquire starts recording pid for a new subscriber, loading the profiler
// if it is not loaded.
func (m *Manager[V]) Acquire(pid int) (*Subscription[V], error) {
	var sub *Subscription[V]
	err := m.loader.Use(func(p *Profiler[V]) (err error) {
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
func (m *Manager[V]) Loaded() bool {
	_, ok := m.loader.Loaded()
	return ok
}

// Profiler is the loaded profiler, if any.
func (m *Manager[V]) Profiler() (*Profiler[V], bool) { return m.loader.Loaded() }

// Close unloads the profiler; open subscriptions return ErrClosed.
func (m *Manager[V]) Close() error { return m.loader.Close() }

// StartTask starts a task on t.PID: a profile every report interval and a
// final one (from DrainFinal) at the end. An error means it did not start.
func (m *Manager[V]) StartTask(sym *symbolize.Symbolizer, t taskrun.Task) (*taskrun.Run, error) {
	return taskrun.Start(m.name, sym, t, m.Acquire, func(sub *Subscription[V], final bool) (*profiles.Profile, error) {
		drain := sub.Drain
		if final {
			drain = sub.DrainFinal
		}
		b, err := drain()
		if b == nil || len(b.Samples) == 0 {
			return nil, err
		}
		return b.Profile(sym, t.Resource, t.Attributes), err
	})
}
