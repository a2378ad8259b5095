package sharedcomponent

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
)

type counter struct {
	starts, stops int
}

func (c *counter) Start(context.Context, component.Host) error { c.starts++; return nil }
func (c *counter) Shutdown(context.Context) error              { c.stops++; return nil }

func TestSharedStartsAndStopsOnce(t *testing.T) {
	var m Map[string, *counter]
	a, err := m.LoadOrStore("x", func() (*counter, error) { return &counter{}, nil })
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.LoadOrStore("x", func() (*counter, error) { t.Fatal("created twice"); return nil, nil })
	if a != b {
		t.Fatal("same key gave two instances")
	}
	host := componenttest.NewNopHost()
	for range 3 {
		_ = a.Start(context.Background(), host)
		_ = b.Start(context.Background(), host)
	}
	_ = a.Shutdown(context.Background())
	_ = b.Shutdown(context.Background())
	if a.Value.starts != 1 || a.Value.stops != 1 {
		t.Fatalf("starts=%d stops=%d, want 1 and 1", a.Value.starts, a.Value.stops)
	}
	c, _ := m.LoadOrStore("x", func() (*counter, error) { return &counter{}, nil })
	if c == a {
		t.Fatal("a shut-down instance was handed out again")
	}
}
