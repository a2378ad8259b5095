package taskcontrol

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/pprof/profile"
)

// profileStore keeps one merged profile per task as gzip pprof bytes:
// storing the encoded form makes the memory bound exact and serving free.
type profileStore struct {
	mu      sync.Mutex
	limit   int64
	total   int64
	entries map[string]*storedProfile
}

type storedProfile struct {
	data    []byte
	created time.Time
	count   int
	dropped bool
	err     string
}

func newProfileStore(limit int64) *profileStore {
	return &profileStore{limit: limit, entries: make(map[string]*storedProfile)}
}

// add merges p into the task's profile, then evicts the profiles of the
// oldest tasks until the total fits the bound.
func (s *profileStore) add(id string, created time.Time, p *profile.Profile) error {
	if err := p.CheckValid(); err != nil {
		return s.fail(id, created, fmt.Errorf("invalid profile: %w", err))
	}
	if p.PeriodType == nil && len(p.SampleType) > 0 {
		// profile.Merge dereferences the period type; an executor's
		// profile without one must not take the collector down.
		p.PeriodType = &profile.ValueType{Type: p.SampleType[0].Type, Unit: p.SampleType[0].Unit}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	if e == nil {
		e = &storedProfile{created: created}
		s.entries[id] = e
	}
	if e.dropped {
		return errors.New("the task's profile was evicted to respect profile_store_bytes")
	}
	merged := p
	if len(e.data) > 0 {
		old, err := profile.ParseData(e.data)
		if err != nil {
			return s.failLocked(e, fmt.Errorf("stored profile: %w", err))
		}
		if merged, err = profile.Merge([]*profile.Profile{old, p}); err != nil {
			return s.failLocked(e, fmt.Errorf("merge: %w", err))
		}
	}
	var buf bytes.Buffer
	if err := merged.Write(&buf); err != nil {
		return s.failLocked(e, fmt.Errorf("encode: %w", err))
	}
	s.total += int64(buf.Len() - len(e.data))
	e.data = buf.Bytes()
	e.count++
	s.evictLocked(id)
	return nil
}

func (s *profileStore) fail(id string, created time.Time, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	if e == nil {
		e = &storedProfile{created: created}
		s.entries[id] = e
	}
	return s.failLocked(e, err)
}

func (s *profileStore) failLocked(e *storedProfile, err error) error {
	e.err = err.Error()
	return err
}

// evictLocked drops whole profiles, oldest task first; the profile just
// added goes last, and only if it alone exceeds the bound.
func (s *profileStore) evictLocked(justAdded string) {
	for s.total > s.limit {
		var victim string
		var vt time.Time
		for id, e := range s.entries {
			if len(e.data) == 0 || id == justAdded {
				continue
			}
			if victim == "" || e.created.Before(vt) {
				victim, vt = id, e.created
			}
		}
		if victim == "" {
			victim = justAdded
		}
		e := s.entries[victim]
		if e == nil || len(e.data) == 0 {
			return
		}
		s.total -= int64(len(e.data))
		e.data, e.dropped = nil, true
	}
}

func (s *profileStore) get(id string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	if e == nil || len(e.data) == 0 {
		return nil, false
	}
	return e.data, true // never modified: add replaces the slice
}

func (s *profileStore) info(id string) ProfileInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.infoLocked(id)
}

func (s *profileStore) infoLocked(id string) ProfileInfo {
	e := s.entries[id]
	if e == nil {
		return ProfileInfo{}
	}
	return ProfileInfo{Bytes: len(e.data), Profiles: e.count, Dropped: e.dropped, Error: e.err}
}

func (s *profileStore) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[id]; e != nil {
		s.total -= int64(len(e.data))
		delete(s.entries, id)
	}
}

// usage is the total bytes stored.
func (s *profileStore) usage() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}
