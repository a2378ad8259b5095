// Package sharedcomponent lets one component instance serve several
// pipelines (metrics, profiles, logs) of the same component ID, the way the
// contrib receivers share one instance: Start runs once, Shutdown runs once
// and forgets the instance so a later create builds a fresh one.
package sharedcomponent

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/component"
)

// Map holds the live shared instances by key (normally the component ID).
type Map[K comparable, V component.Component] struct {
	mu sync.Mutex
	m  map[K]*Component[V]
}

// LoadOrStore returns the instance for key, creating it with create if none
// is live.
func (m *Map[K, V]) LoadOrStore(key K, create func() (V, error)) (*Component[V], error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.m[key]; ok {
		return c, nil
	}
	v, err := create()
	if err != nil {
		return nil, err
	}
	if m.m == nil {
		m.m = map[K]*Component[V]{}
	}
	c := &Component[V]{Value: v}
	c.forget = func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.m[key] == c {
			delete(m.m, key)
		}
	}
	m.m[key] = c
	return c, nil
}

// Component wraps the shared value so that Start and Shutdown are idempotent.
type Component[V component.Component] struct {
	Value V

	startOnce sync.Once
	stopOnce  sync.Once
	forget    func()
	startErr  error
	stopErr   error
}

// Start starts the value once, whichever pipeline asks first.
func (c *Component[V]) Start(ctx context.Context, host component.Host) error {
	c.startOnce.Do(func() { c.startErr = c.Value.Start(ctx, host) })
	return c.startErr
}

// Shutdown stops the value once and forgets it.
func (c *Component[V]) Shutdown(ctx context.Context) error {
	c.stopOnce.Do(func() {
		c.stopErr = c.Value.Shutdown(ctx)
		c.forget()
	})
	return c.stopErr
}
