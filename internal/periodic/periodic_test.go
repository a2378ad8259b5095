package periodic

import (
	"context"
	"testing"
	"time"
)

func TestRunTicksUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, time.Millisecond, func(time.Time) {
			calls++
			if calls == 3 {
				cancel()
			}
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	if calls != 3 {
		t.Fatalf("calls = %d, want 3 (none after cancel)", calls)
	}
}
