package taskcontrol

import (
	"sync"
	"time"

	"github.com/contprof/contprof/internal/control/dispatch"
	"github.com/contprof/contprof/internal/output/flows"
)

// Bounds of the flows kept for network tasks: per task, and how many
// tasks keep theirs (the oldest task's flows go first).
const (
	maxFlowsPerTask  = 500
	maxTasksForFlows = 200
)

var _ dispatch.FlowSink = (*sink)(nil)

// flowStore keeps the summed flows of network tasks.
type flowStore struct {
	mu      sync.Mutex
	entries map[string]*flowEntry
}

type flowEntry struct {
	created time.Time
	table   flows.Table
}

func (s *flowStore) add(id string, created time.Time, fs []flows.Flow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries == nil {
		s.entries = map[string]*flowEntry{}
	}
	e := s.entries[id]
	if e == nil {
		for len(s.entries) >= maxTasksForFlows {
			s.evictOldestLocked()
		}
		e = &flowEntry{created: created, table: flows.Table{Max: maxFlowsPerTask}}
		s.entries[id] = e
	}
	e.table.Add(fs)
}

func (s *flowStore) evictOldestLocked() {
	var victim string
	var vt time.Time
	for id, e := range s.entries {
		if victim == "" || e.created.Before(vt) {
			victim, vt = id, e.created
		}
	}
	delete(s.entries, victim)
}

func (s *flowStore) get(id string) ([]flows.Flow, int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	if e == nil {
		return nil, 0, false
	}
	return e.table.Flows(), e.table.Dropped, true
}

// AddFlows implements dispatch.FlowSink.
func (s *sink) AddFlows(fs []flows.Flow) {
	c := s.c
	c.mu.Lock()
	_, known := c.tasks[s.t.info.ID]
	created := s.t.info.Created
	c.mu.Unlock()
	if known {
		c.flows.add(s.t.info.ID, created, fs)
	}
}

// Flows returns a network task's flows summed over its report intervals,
// most bytes first, and how many flows were left out by the bound; false
// when the task kept none (not a network task, none yet, or evicted).
func (c *Controller) Flows(id string) ([]flows.Flow, int, bool) {
	c.mu.Lock()
	_, known := c.tasks[id]
	c.mu.Unlock()
	if !known {
		return nil, 0, false
	}
	return c.flows.get(id)
}
