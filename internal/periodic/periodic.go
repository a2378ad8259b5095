// Package periodic runs a function on a ticker until its context ends, the
// loop every poller, refresher and clock in contprof shares.
package periodic

import (
	"context"
	"time"
)

// Run calls f with the tick's time every interval until ctx is done; it
// returns then. The first call is one interval after Run starts.
func Run(ctx context.Context, interval time.Duration, f func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}
