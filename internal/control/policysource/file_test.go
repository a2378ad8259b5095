package policysource

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/contprof/contprof/internal/control/policy"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func policyDoc(name string, threshold int) string {
	return "policies:\n  - name: " + name + "\n    target: on_cpu\n    items:\n      - { monitor: process_cpu, threshold: " +
		strconv.Itoa(threshold) + ", period: 10, count: 5 }\n"
}

// collector records updates; next waits for one.
type collector chan Update

func (c collector) add(u Update) { c <- u }

// live is the contract of the file source: a change is live within 2s.
const live = 2 * time.Second

func (c collector) next(t *testing.T) Update {
	t.Helper()
	select {
	case u := <-c:
		return u
	case <-time.After(live):
		t.Fatal("no update within 2s")
		return Update{}
	}
}

func (c collector) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case u := <-c:
		t.Fatalf("unexpected update: %+v", u)
	case <-time.After(d):
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes like vim/emacs/kubectl do: a temp file renamed over.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".swp"
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func wantPolicy(t *testing.T, u Update, name string, threshold float64) {
	t.Helper()
	if u.Err != nil {
		t.Fatalf("unexpected error: %v", u.Err)
	}
	if len(u.Policies) != 1 || u.Policies[0].Name != name || u.Policies[0].Items[0].Threshold != threshold {
		t.Fatalf("got %+v, want %s threshold %v", u.Policies, name, threshold)
	}
}

func TestFileSource(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policies.yaml")
	writeFile(t, path, policyDoc("a", 50))

	c := make(collector, 16)
	f := NewFile(path, zaptest.NewLogger(t), c.add)
	f.Start()
	defer f.Shutdown()

	// Start reports synchronously.
	select {
	case u := <-c:
		wantPolicy(t, u, "a", 50)
		if u.Kind != KindFile || u.Location != path {
			t.Fatalf("kind/location %q %q", u.Kind, u.Location)
		}
	default:
		t.Fatal("Start did not report the initial load")
	}

	t.Run("in-place write", func(t *testing.T) {
		writeFile(t, path, policyDoc("a", 60))
		wantPolicy(t, c.next(t), "a", 60)
	})
	t.Run("rename and replace", func(t *testing.T) {
		replaceFile(t, path, policyDoc("b", 70))
		wantPolicy(t, c.next(t), "b", 70)
	})
	t.Run("same content is no change", func(t *testing.T) {
		replaceFile(t, path, policyDoc("b", 70))
		writeFile(t, filepath.Join(dir, "unrelated.txt"), "x")
		c.none(t, 500*time.Millisecond)
	})
	t.Run("truncated file keeps the last good policies", func(t *testing.T) {
		// `: > policies.yaml`, or an editor truncating before it writes.
		m := NewMerger(time.Now)
		m.AddSource(KindFile, path)
		if _, _, err := m.Apply(Update{Kind: KindFile, Location: path, Policies: []policy.Policy{{Name: "b"}}}); err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, " \n")
		u := c.next(t)
		if u.Err == nil || !strings.Contains(u.Err.Error(), path+": document is empty") || u.Policies != nil {
			t.Fatalf("update = %+v", u)
		}
		set, _, err := m.Apply(u)
		if err != nil || set.Len() != 1 || m.Err() == nil {
			t.Fatalf("after an empty file: %d policies, source error %v (%v); want the last good one kept and an error", set.Len(), m.Err(), err)
		}
		writeFile(t, path, "policies: []\n")
		if u := c.next(t); u.Err != nil || len(u.Policies) != 0 {
			t.Fatalf("explicit empty list: update = %+v", u)
		}
		writeFile(t, path, policyDoc("b", 70))
		wantPolicy(t, c.next(t), "b", 70)
	})
	t.Run("invalid policy reported once", func(t *testing.T) {
		writeFile(t, path, strings.Replace(policyDoc("b", 70), "count: 5", "count: 12", 1))
		u := c.next(t)
		if u.Err == nil || !strings.Contains(u.Err.Error(), `policy "b": items[0].count: 12 is greater than period 10`) || u.Policies != nil {
			t.Fatalf("update = %+v", u)
		}
		// Touching the directory again re-reads the same bad content: not
		// reported again.
		writeFile(t, filepath.Join(dir, "unrelated.txt"), "y")
		c.none(t, 500*time.Millisecond)
	})
	t.Run("malformed yaml", func(t *testing.T) {
		writeFile(t, path, "policies: [")
		if u := c.next(t); u.Err == nil || !strings.Contains(u.Err.Error(), "invalid YAML") {
			t.Fatalf("update = %+v", u)
		}
	})
	t.Run("deleted", func(t *testing.T) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if u := c.next(t); u.Err == nil || !strings.Contains(u.Err.Error(), "no such file") {
			t.Fatalf("update = %+v", u)
		}
	})
	t.Run("recreated", func(t *testing.T) {
		replaceFile(t, path, policyDoc("b", 70))
		wantPolicy(t, c.next(t), "b", 70)
	})
	t.Run("symlink swap", func(t *testing.T) {
		// The Kubernetes ConfigMap layout: file -> ..data/file, ..data -> ..v1.
		for _, v := range []string{"..v1", "..v2"} {
			if err := os.Mkdir(filepath.Join(dir, v), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		writeFile(t, filepath.Join(dir, "..v1", "policies.yaml"), policyDoc("k", 10))
		writeFile(t, filepath.Join(dir, "..v2", "policies.yaml"), policyDoc("k", 20))
		if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "link.tmp")
		if err := os.Symlink(filepath.Join("..data", "policies.yaml"), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		wantPolicy(t, c.next(t), "k", 10)
		if err := os.Symlink("..v2", filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		wantPolicy(t, c.next(t), "k", 20)
	})
}

func TestFileSourceMissingDirectoryPolls(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "later")
	path := filepath.Join(dir, "p.json")
	c := make(collector, 16)
	f := NewFile(path, zaptest.NewLogger(t), c.add)
	f.Start()
	defer f.Shutdown()
	if u := <-c; u.Err == nil {
		t.Fatalf("missing file gave %+v", u)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, `{"policies":[{"name":"j","target":"on_cpu","items":[{"monitor":"process_cpu","threshold":5,"period":1,"count":1}]}]}`)
	wantPolicy(t, c.next(t), "j", 5)
}

func TestFileSourceTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	writeFile(t, path, "# "+strings.Repeat("x", MaxDocumentBytes))
	c := make(collector, 1)
	f := NewFile(path, zaptest.NewLogger(t), c.add)
	f.Start()
	f.Shutdown()
	if u := <-c; u.Err == nil || !strings.Contains(u.Err.Error(), "larger than") {
		t.Fatalf("update = %+v", u)
	}
	f.Shutdown() // idempotent
}
