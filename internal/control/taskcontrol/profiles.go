package taskcontrol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/google/pprof/profile"

	"github.com/contprof/contprof/internal/output/flame"
	"github.com/contprof/contprof/internal/output/profiles"
)

// profileStore keeps one merged profile per task in the neutral
// profiles.Profile form. A report interval is merged in by adding its
// sample values to the stacks already known (no parse, no re-encode);
// conversion to pprof happens only when the profile is downloaded. Stacks
// are kept per report interval (the pprof samples carry the interval's
// start as the label flame.IntervalLabel) so that the web UI can show one
// interval at a time.
//
// Memory is bounded by an estimate kept alongside: every stored stack costs
// its frames and index key, every distinct string and mapping is stored
// once per task (interned) and counted once.
type profileStore struct {
	mu      sync.Mutex
	limit   int64
	total   int64
	entries map[string]*storedProfile
	// onDrop is told the id of an evicted profile (the journal forgets
	// it on disk too); called with mu held.
	onDrop func(id string)
}

type storedProfile struct {
	created time.Time
	count   int
	dropped bool
	err     string

	// merged is nil until the first profile; its Samples grow in place.
	merged *profiles.Profile
	// intervals[i] is the start (unix seconds) of the report interval of
	// merged.Samples[i]; 0 when unknown.
	intervals []int64
	// stacks indexes merged.Samples by the stack's frames.
	stacks   map[string]int
	strings  map[string]string
	mappings map[profiles.Mapping]*profiles.Mapping
	bytes    int64
	keyBuf   []byte
}

// Sizes of the estimate.
const (
	sampleCost  = int64(unsafe.Sizeof(profiles.Sample{}))
	frameCost   = int64(unsafe.Sizeof(profiles.Frame{}))
	mappingCost = int64(unsafe.Sizeof(profiles.Mapping{}))
	// mapEntryCost approximates a Go map entry's overhead beyond key and
	// value data.
	mapEntryCost = 48
	stringCost   = int64(unsafe.Sizeof("")) + mapEntryCost
)

func newProfileStore(limit int64) *profileStore {
	return &profileStore{limit: limit, entries: make(map[string]*storedProfile)}
}

// add merges p into the task's profile, then evicts the profiles of the
// oldest tasks until the total fits the bound.
func (s *profileStore) add(id string, created time.Time, p *profiles.Profile) error {
	if err := validate(p); err != nil {
		return s.fail(id, created, fmt.Errorf("invalid profile: %w", err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(id, created)
	if e.dropped {
		return errors.New("the task's profile was evicted to respect profile_store_bytes")
	}
	if e.merged != nil && e.merged.Kind != p.Kind {
		return s.failLocked(e, fmt.Errorf("merge: profile kind %+v differs from the task's %+v", p.Kind, e.merged.Kind))
	}
	before := e.bytes
	e.merge(p)
	e.count++
	s.total += e.bytes - before
	s.evictLocked(id)
	return nil
}

// validate rejects what the pprof conversion could not represent.
func validate(p *profiles.Profile) error {
	if p.Kind.SampleType == "" || p.Kind.SampleUnit == "" {
		return fmt.Errorf("kind: sample type and unit are required, got %q/%q", p.Kind.SampleType, p.Kind.SampleUnit)
	}
	for i := range p.Samples {
		if p.Samples[i].Value < 0 {
			return fmt.Errorf("samples[%d].value: %d is negative", i, p.Samples[i].Value)
		}
	}
	return nil
}

func (s *profileStore) entry(id string, created time.Time) *storedProfile {
	e := s.entries[id]
	if e == nil {
		e = &storedProfile{created: created}
		s.entries[id] = e
	}
	return e
}

// merge adds p's samples to the stored stacks, interning strings and
// mappings so that the task's profile holds each once.
func (e *storedProfile) merge(p *profiles.Profile) {
	if e.merged == nil {
		e.merged = &profiles.Profile{Kind: p.Kind, Start: p.Start, End: p.End, Resource: p.Resource, Attributes: p.Attributes}
		e.stacks = make(map[string]int)
		e.strings = make(map[string]string)
		e.mappings = make(map[profiles.Mapping]*profiles.Mapping)
	}
	m := e.merged
	if !p.Start.IsZero() && (m.Start.IsZero() || p.Start.Before(m.Start)) {
		m.Start = p.Start
	}
	if p.End.After(m.End) {
		m.End = p.End
	}
	var interval int64
	if !p.Start.IsZero() {
		interval = p.Start.Unix()
	}
	for i := range p.Samples {
		smp := &p.Samples[i]
		e.keyBuf = binary.LittleEndian.AppendUint64(e.keyBuf[:0], uint64(interval))
		e.keyBuf = stackKey(e.keyBuf, smp.Frames)
		// Samples of one stack with other labels (a lookback's phase) stay
		// apart.
		for _, k := range slices.Sorted(maps.Keys(smp.Labels)) {
			e.keyBuf = append(append(append(append(e.keyBuf, 0), k...), '='), smp.Labels[k]...)
		}
		if j, ok := e.stacks[string(e.keyBuf)]; ok {
			m.Samples[j].Value += smp.Value
			continue
		}
		frames := make([]profiles.Frame, len(smp.Frames))
		for k, f := range smp.Frames {
			f.Function = e.intern(f.Function)
			f.SystemName = e.intern(f.SystemName)
			f.File = e.intern(f.File)
			if f.Mapping != nil {
				f.Mapping = e.mapping(*f.Mapping)
			}
			frames[k] = f
		}
		e.stacks[string(e.keyBuf)] = len(m.Samples)
		m.Samples = append(m.Samples, profiles.Sample{Frames: frames, Value: smp.Value, Labels: maps.Clone(smp.Labels)})
		e.intervals = append(e.intervals, interval)
		e.bytes += sampleCost + 8 + int64(len(frames))*frameCost + int64(len(e.keyBuf)) + mapEntryCost
	}
}

// stackKey identifies a stack by each frame's address, type and function:
// a JIT can reuse an address for another function over a task's life.
func stackKey(b []byte, frames []profiles.Frame) []byte {
	for i := range frames {
		f := &frames[i]
		b = binary.LittleEndian.AppendUint64(b, f.Address)
		b = binary.LittleEndian.AppendUint64(b, uint64(f.Line))
		b = append(b, f.Type...)
		b = append(b, 0)
		b = append(b, f.Function...)
		b = append(b, 0)
	}
	return b
}

func (e *storedProfile) intern(v string) string {
	if v == "" {
		return ""
	}
	if s, ok := e.strings[v]; ok {
		return s
	}
	v = strings.Clone(v) // a substring must not keep the caller's buffer alive
	e.strings[v] = v
	e.bytes += stringCost + int64(len(v))
	return v
}

func (e *storedProfile) mapping(m profiles.Mapping) *profiles.Mapping {
	if p, ok := e.mappings[m]; ok {
		return p
	}
	p := &profiles.Mapping{Start: m.Start, Limit: m.Limit, Offset: m.Offset,
		File: e.intern(m.File), BuildID: e.intern(m.BuildID), GoBuildID: e.intern(m.GoBuildID), HTLHash: e.intern(m.HTLHash)}
	e.mappings[m] = p
	e.bytes += 2*mappingCost + mapEntryCost
	return p
}

// drop forgets the stored data, keeping the counters.
func (e *storedProfile) drop() {
	e.merged, e.intervals, e.stacks, e.strings, e.mappings, e.keyBuf = nil, nil, nil, nil, nil, nil
	e.bytes, e.dropped = 0, true
}

func (s *profileStore) fail(id string, created time.Time, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failLocked(s.entry(id, created), err)
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
			if e.bytes == 0 || id == justAdded {
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
		if e == nil || e.bytes == 0 {
			return
		}
		s.total -= e.bytes
		e.drop()
		if s.onDrop != nil {
			s.onDrop(victim)
		}
	}
}

// profile converts the task's merged profile to pprof.
func (s *profileStore) profile(id string) (*profile.Profile, bool) {
	p, intervals, ok := s.neutral(id)
	if !ok {
		return nil, false
	}
	out := p.Pprof() // one pprof sample per sample, in order
	for i, smp := range out.Sample {
		if intervals[i] == 0 {
			continue
		}
		smp.NumLabel = map[string][]int64{flame.IntervalLabel: {intervals[i]}}
		smp.NumUnit = map[string][]string{flame.IntervalLabel: {"seconds"}}
	}
	return out, true
}

// neutral returns the task's merged profile and the report interval of
// each sample. Only the sample slices are copied under the lock: frames are
// never modified once stored.
func (s *profileStore) neutral(id string) (*profiles.Profile, []int64, bool) {
	p, intervals, _, ok := s.snapshot(id)
	return p, intervals, ok
}

// snapshot is neutral plus how many profiles were merged into it, read
// under the same lock (the journal stores them together).
func (s *profileStore) snapshot(id string) (p *profiles.Profile, intervals []int64, count int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	if e == nil || e.merged == nil {
		return nil, nil, 0, false
	}
	cp := *e.merged
	cp.Samples = slices.Clone(cp.Samples)
	return &cp, slices.Clone(e.intervals), e.count, true
}

// pprof encodes the task's merged profile as gzip pprof.
func (s *profileStore) pprof(id string) ([]byte, bool, error) {
	p, ok := s.profile(id)
	if !ok {
		return nil, false, nil
	}
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		return nil, true, fmt.Errorf("encoding the profile: %w", err)
	}
	return buf.Bytes(), true, nil
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
	return ProfileInfo{Bytes: int(e.bytes), Profiles: e.count, Dropped: e.dropped, Error: e.err}
}

func (s *profileStore) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[id]; e != nil {
		s.total -= e.bytes
		delete(s.entries, id)
	}
}

// usage is the estimated total bytes stored.
func (s *profileStore) usage() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}
