package policy

import (
	"bytes"
	"encoding/json"
	"time"

	"gopkg.in/yaml.v3"
)

// policyJSON is the wire form: durations as strings ("10m0s"), the same
// form Parse reads.
type policyJSON struct {
	Name     string   `json:"name"`
	Selector Selector `json:"selector,omitempty"`
	Target   Target   `json:"target"`
	Duration string   `json:"duration,omitempty"`
	Silence  string   `json:"silence,omitempty"`
	Lookback string   `json:"lookback,omitempty"`
	Items    []Item   `json:"items"`
}

func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// lookbackText is "0s" for a lookback explicitly off, so that the output
// does not parse back into the target's default.
func lookbackText(p Policy) string {
	if p.LookbackSet && p.Lookback == 0 {
		return "0s"
	}
	return durationText(p.Lookback)
}

// MarshalJSON writes durations as strings so that the output parses back.
func (p Policy) MarshalJSON() ([]byte, error) {
	return json.Marshal(policyJSON{
		Name: p.Name, Selector: p.Selector, Target: p.Target,
		Duration: durationText(p.Duration), Silence: durationText(p.Silence),
		Lookback: lookbackText(p), Items: p.Items,
	})
}

// UnmarshalJSON decodes one policy strictly (unknown fields are errors). It
// does not validate; use Parse or Validate for that.
func (p *Policy) UnmarshalJSON(data []byte) error {
	v, err := decodeJSON(data)
	if err != nil {
		return err
	}
	dp, err := decodePolicy(v, 0)
	if err != nil {
		return err
	}
	*p = dp
	return nil
}

// UnmarshalYAML decodes one policy strictly, like UnmarshalJSON.
func (p *Policy) UnmarshalYAML(node *yaml.Node) error {
	var v any
	if err := node.Decode(&v); err != nil {
		return err
	}
	dp, err := decodePolicy(v, 0)
	if err != nil {
		return err
	}
	*p = dp
	return nil
}

// MarshalJSON writes an exact matcher as a plain string and a regex matcher
// as {"regex": "..."}, the forms Parse reads.
func (m Matcher) MarshalJSON() ([]byte, error) {
	if m.Regex != "" {
		return json.Marshal(map[string]string{"regex": m.Regex})
	}
	return json.Marshal(m.Exact)
}

// UnmarshalJSON reads a plain value (exact) or {"regex": "..."}.
func (m *Matcher) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	return m.decode(v)
}

// MarshalYAML mirrors MarshalJSON.
func (m Matcher) MarshalYAML() (any, error) {
	if m.Regex != "" {
		return map[string]string{"regex": m.Regex}, nil
	}
	return m.Exact, nil
}

// UnmarshalYAML reads a plain value (exact) or {regex: ...}.
func (m *Matcher) UnmarshalYAML(node *yaml.Node) error {
	var v any
	if err := node.Decode(&v); err != nil {
		return err
	}
	return m.decode(v)
}

// decode sets m from a decoded plain value or regex map.
func (m *Matcher) decode(v any) error {
	dm, err := decodeMatcher(v, "selector")
	if err != nil {
		return err
	}
	*m = dm
	return nil
}
