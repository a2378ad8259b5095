package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that no input panics the parser and that every accepted
// document survives a JSON round trip with the same version.
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodYAML))
	f.Add([]byte(""))
	f.Add([]byte("   \n# only a comment\n"))
	f.Add([]byte("policies: []"))
	f.Add([]byte("policies: ["))
	f.Add([]byte(`[{"name":"a","target":"on_cpu","items":[{"monitor":"process_cpu","threshold":1e2,"period":1,"count":1}]}]`))
	f.Add([]byte("- {name: a, target: network, selector: {x: {regex: '(?i)a|b'}, n: 1.50}, items: [{monitor: http_error_rate, threshold: 0.5, period: 3600, count: 3600, uri_list: [/]}]}"))
	f.Add([]byte("policies:\n- name: a\n  selector: {x: !!binary aGk=}\n  target: off_cpu\n  items: [{monitor: system_load, threshold: 9223372036854775807, period: 1, count: 1}]\n"))
	f.Add([]byte("&a [*a]"))
	f.Add([]byte("{\"policies\": null}"))
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := Parse(data, "fuzz")
		if err != nil {
			return
		}
		out, err := json.Marshal(ps)
		if err != nil {
			t.Fatalf("accepted policies do not marshal: %v", err)
		}
		back, err := Parse(out, "roundtrip")
		if err != nil {
			t.Fatalf("round trip of %s failed: %v", out, err)
		}
		if Version(back) != Version(ps) {
			t.Fatalf("round trip changed the version: %s", out)
		}
	})
}

// FuzzDecode feeds the decoder what the Collector's confmap gives for
// inline policies: arbitrary trees of maps, lists, strings and numbers
// (built here from JSON). It must never panic, and what it accepts must
// validate again.
func FuzzDecode(f *testing.F) {
	f.Add(`[{"name":"a","target":"on_cpu","items":[{"monitor":"process_cpu","threshold":50,"period":10,"count":5}]}]`)
	f.Add(`{"policies":[{"name":"a","selector":{"k":{"regex":"^x"},"n":3},"target":"network","duration":"1m","silence":"2h","items":[{"monitor":"http_error_rate","threshold":5,"period":60,"count":3,"uri_regex":"^/api"}]}]}`)
	f.Add(`[{"name":1,"target":[],"items":{"a":null}}]`)
	f.Add(`[{"name":"a","target":"on_cpu","duration":1e300,"items":[{"monitor":"process_cpu","threshold":-0,"period":1.5,"count":"5"}]}]`)
	f.Fuzz(func(t *testing.T, doc string) {
		var root any
		if err := json.Unmarshal([]byte(doc), &root); err != nil {
			return
		}
		ps, err := Decode(root, "policies")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "policies") {
				t.Fatalf("error does not name the source: %v", err)
			}
			return
		}
		if err := Validate(ps); err != nil {
			t.Fatalf("accepted policies do not validate: %v", err)
		}
	})
}
