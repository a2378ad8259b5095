package control

import (
	"time"

	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/decide/history"
)

// ProcessHistory is implemented by a ProcessView that keeps the recent
// per-second values of its processes (the processor): the UI charts them,
// and dry-runs policies on them.
type ProcessHistory interface {
	// History returns the kept seconds of the process with the given
	// Process.Key, ending now.
	History(key string) (history.Window, bool)
	// DryRun replays validated policies over the last lookback of the kept
	// seconds. It starts nothing and changes nothing.
	DryRun(policies []policy.Policy, lookback time.Duration) []history.PolicyRun
	// HistorySpan is how far back the history reaches.
	HistorySpan() time.Duration
}
