// Package policysource loads policies from the places an operator keeps
// them: a watched file and a polled HTTP endpoint. Each source reports only
// changes (new content, a new error, recovery), so a broken source is logged
// once per change rather than once per poll. Merger combines the sources
// into one policy.Set and keeps each source's last good policies in force.
package policysource

import (
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/contprof/contprof/internal/control/policy"
)

// MaxDocumentBytes bounds a policy document read from a file or URL.
const MaxDocumentBytes = 4 << 20

// Source kinds, as the extension's settings name them.
const (
	KindInline = "policies"
	KindFile   = "policy_file"
	KindURL    = "policy_url"
)

// Update is what a source reports: its complete policy list, or an error
// (in which case Policies is nil and the previous good list stays).
type Update struct {
	Kind     string
	Location string
	Policies []policy.Policy
	Err      error
}

// tracker turns every load into at most one Update per change: new
// content, a new error, or recovery from an error.
type tracker struct {
	kind, location string

	// The content last read and what parsing it gave.
	hash       [32]byte
	haveHash   bool
	good       []policy.Policy
	contentErr error

	// lastErr is the error last reported; "" when the last report was good.
	lastErr string
}

// loaded returns the update to report for a successful read of data, or
// ok=false when nothing changed.
func (t *tracker) loaded(data []byte) (Update, bool) {
	h := sha256.Sum256(data)
	if t.haveHash && h == t.hash {
		return t.unchanged()
	}
	t.hash, t.haveHash = h, true
	t.good, t.contentErr = nil, nil
	ps, err := policy.Parse(data, t.location)
	if err != nil {
		t.contentErr = err
		return t.failed(err)
	}
	t.good, t.lastErr = ps, ""
	return Update{Kind: t.kind, Location: t.location, Policies: ps}, true
}

// unchanged reports the content read before once more: a change only when
// it recovers from a read or transport error.
func (t *tracker) unchanged() (Update, bool) {
	switch {
	case !t.haveHash:
		return Update{}, false
	case t.contentErr != nil:
		return t.failed(t.contentErr)
	case t.lastErr == "":
		return Update{}, false
	}
	t.lastErr = ""
	return Update{Kind: t.kind, Location: t.location, Policies: t.good}, true
}

// failed returns the update to report for err, or ok=false when the same
// error was already reported.
func (t *tracker) failed(err error) (Update, bool) {
	if err.Error() == t.lastErr {
		return Update{}, false
	}
	t.lastErr = err.Error()
	return Update{Kind: t.kind, Location: t.location, Err: err}, true
}

func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxDocumentBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxDocumentBytes {
		return nil, fmt.Errorf("document is larger than %d bytes", MaxDocumentBytes)
	}
	return data, nil
}
