package policysource

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/control/policy"
)

func pols(t *testing.T, names ...string) []policy.Policy {
	t.Helper()
	var ps []policy.Policy
	for _, n := range names {
		ps = append(ps, policy.Policy{Name: n, Target: policy.TargetOnCPU,
			Items: []policy.Item{{Monitor: policy.MonitorProcessCPU, Threshold: 50, Period: 10, Count: 5}}})
	}
	if err := policy.Validate(ps); err != nil {
		t.Fatal(err)
	}
	return ps
}

func names(s *policy.Set) string {
	var n []string
	for _, p := range s.Policies {
		n = append(n, p.Name)
	}
	return strings.Join(n, ",")
}

func TestMerger(t *testing.T) {
	now := time.Unix(1000, 0)
	m := NewMerger(func() time.Time { return now })
	m.AddSource(KindInline, "collector config")
	m.AddSource(KindFile, "/p.yaml")
	m.AddSource(KindURL, "http://x")
	empty := m.Current()
	if empty.Len() != 0 || empty.Version == "" {
		t.Fatalf("initial set %+v", empty)
	}

	apply := func(u Update) (*policy.Set, bool) {
		t.Helper()
		s, changed, err := m.Apply(u)
		if err != nil {
			t.Fatal(err)
		}
		return s, changed
	}

	s, changed := apply(Update{Kind: KindInline, Policies: pols(t, "a")})
	if !changed || names(s) != "a" {
		t.Fatalf("inline: %v %s", changed, names(s))
	}
	now = now.Add(time.Second)
	s, changed = apply(Update{Kind: KindFile, Policies: pols(t, "b", "c")})
	if !changed || names(s) != "a,b,c" || !s.LoadedAt.Equal(now) {
		t.Fatalf("file: %v %s", changed, names(s))
	}
	v := s.Version

	// The same content again is no change.
	if _, changed = apply(Update{Kind: KindFile, Policies: pols(t, "c", "b")}); changed {
		t.Fatal("reordered file counted as change")
	}

	// A broken source keeps its last good policies.
	s, changed = apply(Update{Kind: KindFile, Err: errors.New("/p.yaml: invalid YAML")})
	if changed || names(s) != "a,b,c" || s.Version != v {
		t.Fatalf("broken file: %v %s", changed, names(s))
	}
	if err := m.Err(); err == nil || err.Error() != "policy_file: /p.yaml: invalid YAML" {
		t.Fatalf("Err = %v", err)
	}
	st := m.Sources()
	if st[1].LastError == "" || len(st[1].Policies) != 2 || st[1].LoadedAt.IsZero() {
		t.Fatalf("file status %+v", st[1])
	}

	// A name defined twice: the later update is refused, the rest stays.
	now = now.Add(time.Second)
	s, changed = apply(Update{Kind: KindURL, Policies: pols(t, "b", "d")})
	if changed || names(s) != "a,b,c" {
		t.Fatalf("conflict applied: %s", names(s))
	}
	err := m.Err()
	if err == nil || !strings.Contains(err.Error(), `policy_url: policy "b" is already defined by policy_file /p.yaml`) {
		t.Fatalf("Err = %v", err)
	}

	// The file fixes itself and drops "b": the waiting URL list is adopted.
	s, changed = apply(Update{Kind: KindFile, Policies: pols(t, "c")})
	if !changed || names(s) != "a,c,b,d" {
		t.Fatalf("after resolve: %v %s", changed, names(s))
	}
	if err := m.Err(); err != nil {
		t.Fatalf("Err = %v", err)
	}
	if m.SourceOf("d") != KindURL || m.SourceOf("a") != KindInline || m.SourceOf("zz") != "" {
		t.Fatal("SourceOf")
	}

	// An empty, valid list removes a source's policies.
	s, changed = apply(Update{Kind: KindURL, Policies: nil})
	if !changed || names(s) != "a,c" {
		t.Fatalf("emptied url: %s", names(s))
	}

	if _, _, err := m.Apply(Update{Kind: "nope"}); err == nil {
		t.Fatal("unknown source accepted")
	}
}
