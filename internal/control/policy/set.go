package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"time"
)

// NewSet makes an immutable set of already validated policies, loaded at
// now. The version is a content hash that does not depend on the order of
// the policies, so reordering a file does not count as a change.
func NewSet(policies []Policy, now time.Time) *Set {
	ps := make([]Policy, len(policies))
	copy(ps, policies)
	return &Set{Policies: ps, Version: Version(ps), LoadedAt: now}
}

// Version is the content hash of policies (16 hex digits).
func Version(policies []Policy) string {
	sorted := make([]Policy, len(policies))
	copy(sorted, policies)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	h := sha256.New()
	enc := json.NewEncoder(h)
	for i := range sorted {
		// Policies marshal deterministically (maps are key-sorted by
		// encoding/json) and cannot fail: they hold no unsupported types.
		_ = enc.Encode(&sorted[i])
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Lookup returns the policy with the given name, or nil.
func (s *Set) Lookup(name string) *Policy {
	if s == nil {
		return nil
	}
	for i := range s.Policies {
		if s.Policies[i].Name == name {
			return &s.Policies[i]
		}
	}
	return nil
}

// Len is the number of policies; a nil set has none.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.Policies)
}
