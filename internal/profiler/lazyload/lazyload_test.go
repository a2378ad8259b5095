package lazyload

import (
	"errors"
	"testing"
)

// res stands for a loaded profiler: subs open subscriptions.
type res struct {
	subs   int
	closed bool
}

func (r *res) Close() error { r.closed = true; return nil }

func TestLoadOnFirstUseUnloadWhenIdle(t *testing.T) {
	opens := 0
	l := New(func() (*res, error) { opens++; return &res{}, nil }, func(r *res) bool { return r.subs == 0 })
	if _, ok := l.Loaded(); ok {
		t.Fatal("loaded before any use")
	}
	subscribe := func(r *res) error { r.subs++; return nil }
	if err := l.Use(subscribe); err != nil {
		t.Fatal(err)
	}
	if err := l.Use(subscribe); err != nil {
		t.Fatal(err)
	}
	r, ok := l.Loaded()
	if !ok || opens != 1 || r.subs != 2 {
		t.Fatalf("after two uses: loaded %v, %d opens, %d subscriptions; want true, 1, 2", ok, opens, r.subs)
	}
	r.subs--
	l.Release()
	if _, ok := l.Loaded(); !ok || r.closed {
		t.Fatal("unloaded while a subscription is open")
	}
	r.subs--
	l.Release()
	if _, ok := l.Loaded(); ok || !r.closed {
		t.Fatal("still loaded after the last subscription closed")
	}
	if err := l.Use(subscribe); err != nil || opens != 2 {
		t.Fatalf("use after unload: %v, %d opens; want a second load", err, opens)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Loaded(); ok {
		t.Fatal("loaded after Close")
	}
}

func TestFailures(t *testing.T) {
	errOpen, errSub := errors.New("open failed"), errors.New("subscribe failed")
	l := New(func() (*res, error) { return nil, errOpen }, func(r *res) bool { return r.subs == 0 })
	if err := l.Use(func(*res) error { return nil }); !errors.Is(err, errOpen) {
		t.Fatalf("open failure: %v", err)
	}

	l = New(func() (*res, error) { return &res{}, nil }, func(r *res) bool { return r.subs == 0 })
	if err := l.Use(func(*res) error { return errSub }); !errors.Is(err, errSub) {
		t.Fatalf("subscribe failure: %v", err)
	}
	if _, ok := l.Loaded(); ok {
		t.Fatal("still loaded after the only subscription failed")
	}
	if err := l.Use(func(r *res) error { r.subs++; return nil }); err != nil {
		t.Fatal(err)
	}
	r, _ := l.Loaded()
	if err := l.Use(func(*res) error { return errSub }); !errors.Is(err, errSub) {
		t.Fatalf("subscribe failure: %v", err)
	}
	if _, ok := l.Loaded(); !ok || r.closed {
		t.Fatal("a failed subscription unloaded what another one uses")
	}
}
