// Package lazyload keeps a kernel profiler loaded only while a task uses
// it: loaded on the first subscription, unloaded when the last one closes,
// so that nothing runs in the kernel while no task needs it.
package lazyload

import (
	"io"
	"sync"
)

// Loader holds at most one T. It is safe for concurrent use.
type Loader[T io.Closer] struct {
	open func() (T, error)
	idle func(T) bool // whether no subscription of T is open

	mu     sync.Mutex
	v      T
	loaded bool
}

// New returns a Loader that loads with open and unloads (Close) a loaded T
// as soon as idle reports it has no subscription left.
func New[T io.Closer](open func() (T, error), idle func(T) bool) *Loader[T] {
	return &Loader[T]{open: open, idle: idle}
}

// Use calls subscribe with the loaded T, loading it first if needed. The
// lock is held meanwhile so that a concurrent Release cannot unload T
// between the load and the subscription; if subscribe fails, T is unloaded
// again if idle.
func (l *Loader[T]) Use(subscribe func(T) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.loaded {
		v, err := l.open()
		if err != nil {
			return err
		}
		l.v, l.loaded = v, true
	}
	err := subscribe(l.v)
	if err != nil {
		l.unloadIfIdleLocked()
	}
	return err
}

// Release unloads T if it is idle; subscriptions call it when they close.
func (l *Loader[T]) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unloadIfIdleLocked()
}

func (l *Loader[T]) unloadIfIdleLocked() {
	if l.loaded && l.idle(l.v) {
		_ = l.unloadLocked()
	}
}

func (l *Loader[T]) unloadLocked() error {
	err := l.v.Close()
	var zero T
	l.v, l.loaded = zero, false
	return err
}

// Loaded returns T and true while it is loaded.
func (l *Loader[T]) Loaded() (T, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.v, l.loaded
}

// Close unloads T whatever its subscriptions.
func (l *Loader[T]) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.loaded {
		return nil
	}
	return l.unloadLocked()
}
