package continuousprofilingprocessor // import "github.com/contprof/contprof/processor/continuousprofilingprocessor"

import (
	"time"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/decide/history"
)

var _ control.ProcessHistory = (*cpProcessor)(nil)

// History implements control.ProcessHistory.
func (p *cpProcessor) History(key string) (history.Window, bool) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hist.Get(key, now)
}

// DryRun implements control.ProcessHistory.
func (p *cpProcessor) DryRun(policies []policy.Policy, lookback time.Duration) []history.PolicyRun {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hist.DryRun(policies, now, lookback)
}

// HistorySpan implements control.ProcessHistory.
func (p *cpProcessor) HistorySpan() time.Duration { return p.hist.Span() }
