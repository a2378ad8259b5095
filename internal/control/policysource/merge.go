package policysource

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/contprof/contprof/internal/control/policy"
)

// Merger combines the policies of several sources into one policy.Set. A
// source's update replaces only that source's policies; an error keeps its
// last good policies in force. A policy name defined by two sources is an
// error of the later update, which waits (and is retried on every change)
// until the conflict is gone.
type Merger struct {
	mu      sync.Mutex
	now     func() time.Time
	sources []*sourceState
	current *policy.Set
}

type sourceState struct {
	kind, location string

	good    []policy.Policy
	version string
	goodAt  time.Time

	// pending is a valid list that conflicts with another source.
	pending    []policy.Policy
	hasPending bool

	err   error
	errAt time.Time
}

// SourceStatus is one source as GET /api/v1/policies shows it.
type SourceStatus struct {
	Kind     string `json:"kind"`
	Location string `json:"location"`
	// Policies are the names in force from this source.
	Policies []string `json:"policies"`
	// Version is the content hash of this source's policies in force.
	Version string `json:"version"`
	// LoadedAt is when the policies in force were loaded; zero if never.
	LoadedAt time.Time `json:"loaded_at,omitzero"`
	// LastError is set while the source is broken.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// NewMerger returns a merger with an empty current set.
func NewMerger(now func() time.Time) *Merger {
	return &Merger{now: now, current: policy.NewSet(nil, now())}
}

// AddSource declares a source; declaration order is the order of the
// policies in the set and decides which of two conflicting sources wins.
func (m *Merger) AddSource(kind, location string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sources = append(m.sources, &sourceState{kind: kind, location: location, version: policy.Version(nil)})
}

// Current returns the set in force.
func (m *Merger) Current() *policy.Set {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current
}

// Apply takes a source's update and returns the set in force afterwards,
// and whether it differs from the one before.
func (m *Merger) Apply(u Update) (*policy.Set, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var s *sourceState
	for _, st := range m.sources {
		if st.kind == u.Kind {
			s = st
		}
	}
	if s == nil {
		return m.current, false, fmt.Errorf("unknown policy source %q", u.Kind)
	}
	if u.Location != "" {
		s.location = u.Location
	}
	if u.Err != nil {
		s.err, s.errAt = u.Err, now
		s.pending, s.hasPending = nil, false
		return m.current, false, nil
	}
	s.pending, s.hasPending = u.Policies, true
	m.resolve(now)

	var all []policy.Policy
	for _, st := range m.sources {
		all = append(all, st.good...)
	}
	if policy.Version(all) == m.current.Version {
		return m.current, false, nil
	}
	m.current = policy.NewSet(all, now)
	return m.current, true, nil
}

// resolve adopts every pending list that no longer conflicts. Adopting one
// source's list can free names another source waits for, hence the loop.
func (m *Merger) resolve(now time.Time) {
	for progress := true; progress; {
		progress = false
		for _, s := range m.sources {
			if !s.hasPending {
				continue
			}
			if err := m.conflict(s); err != nil {
				if s.err == nil || s.err.Error() != err.Error() {
					s.err, s.errAt = err, now
				}
				continue
			}
			if v := policy.Version(s.pending); v != s.version || s.goodAt.IsZero() {
				s.version, s.goodAt = v, now
			}
			s.good, s.pending, s.hasPending, s.err = s.pending, nil, false, nil
			progress = true
		}
	}
}

func (m *Merger) conflict(s *sourceState) error {
	var errs []error
	for _, p := range s.pending {
		for _, o := range m.sources {
			if o == s {
				continue
			}
			for _, q := range o.good {
				if q.Name == p.Name {
					errs = append(errs, fmt.Errorf("policy %q is already defined by %s %s", p.Name, o.kind, o.location))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Err joins the errors of every broken source, each prefixed with the
// source's setting name; nil when all sources are good.
func (m *Merger) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, s := range m.sources {
		if s.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.kind, s.err))
		}
	}
	return errors.Join(errs...)
}

// Sources returns the status of every source in declaration order.
func (m *Merger) Sources() []SourceStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]SourceStatus, 0, len(m.sources))
	for _, s := range m.sources {
		st := SourceStatus{
			Kind: s.kind, Location: s.location, Version: s.version, LoadedAt: s.goodAt,
			Policies: make([]string, 0, len(s.good)),
		}
		for _, p := range s.good {
			st.Policies = append(st.Policies, p.Name)
		}
		if s.err != nil {
			st.LastError, st.LastErrorAt = s.err.Error(), s.errAt
		}
		out = append(out, st)
	}
	return out
}

// SourceOf returns the kind of the source that defines the named policy.
func (m *Merger) SourceOf(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.sources {
		for _, p := range s.good {
			if p.Name == name {
				return s.kind
			}
		}
	}
	return ""
}
