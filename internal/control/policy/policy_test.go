package policy

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const goodYAML = `
policies:
  - name: checkout-cpu
    selector:
      service.name: checkout
      host.name: { regex: "^web-[0-9]+$" }
    target: on_cpu
    duration: 30s
    silence: 5m
    items:
      - { monitor: process_cpu, threshold: 80, period: 10, count: 5 }
      - { monitor: process_thread_count, threshold: 500, period: 60, count: 1 }
  - name: checkout-http
    selector: { service.name: checkout }
    target: network
    items:
      - monitor: http_error_rate
        threshold: 12.5
        period: 30
        count: 3
        uri_regex: "^/api/"
      - monitor: http_avg_response_time
        threshold: 250
        period: 30
        count: 3
        uri_list: [/api/cart, /api/pay]
  - name: load
    target: off_cpu
    items: [{ monitor: system_load, threshold: 4.5, period: 5, count: 5 }]
`

func TestParseYAML(t *testing.T) {
	ps, err := Parse([]byte(goodYAML), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 {
		t.Fatalf("got %d policies", len(ps))
	}
	p := ps[0]
	if p.Name != "checkout-cpu" || p.Target != TargetOnCPU || p.Duration != 30*time.Second || p.Silence != 5*time.Minute {
		t.Fatalf("policy 0 = %+v", p)
	}
	if p.Selector["service.name"].Exact != "checkout" || p.Selector["host.name"].Regex != "^web-[0-9]+$" {
		t.Fatalf("selector = %+v", p.Selector)
	}
	if it := p.Items[1]; it.Monitor != MonitorProcessThreadCount || it.Threshold != 500 || it.Period != 60 || it.Count != 1 {
		t.Fatalf("item = %+v", it)
	}
	if ps[1].Items[0].URIRegex != "^/api/" || len(ps[1].Items[1].URIList) != 2 || ps[1].Items[0].Threshold != 12.5 {
		t.Fatalf("http items = %+v", ps[1].Items)
	}
	// Defaults.
	if ps[2].Duration != DefaultDuration || ps[2].Silence != DefaultSilence {
		t.Fatalf("defaults not applied: %v %v", ps[2].Duration, ps[2].Silence)
	}
	// Regexes compiled eagerly.
	if m := ps[0].Selector["host.name"]; m.re == nil {
		t.Fatal("selector regex not compiled by Validate")
	}
	if ps[1].Items[0].uriRe == nil {
		t.Fatal("uri_regex not compiled by Validate")
	}
}

// TestParseEmptyDocument: an emptied file (an editor's truncate-then-write,
// `: > policies.yaml`) or an empty HTTP body is an error, so the source's
// last good policies stay; only an explicit empty list means "none".
func TestParseEmptyDocument(t *testing.T) {
	for _, doc := range []string{"", "   \n\t\n", "# nothing yet\n", "policies:", "policies: ~", `{"policies": null}`, "null"} {
		_, err := Parse([]byte(doc), "/etc/p.yaml")
		if !errors.Is(err, ErrEmptyDocument) {
			t.Errorf("Parse(%q) = %v, want ErrEmptyDocument", doc, err)
			continue
		}
		if !strings.Contains(err.Error(), "/etc/p.yaml: document is empty") || !strings.Contains(err.Error(), "policies: []") {
			t.Errorf("Parse(%q): error %q does not name the source and the fix", doc, err)
		}
	}
}

func TestParseForms(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		n    int
	}{
		{"empty policies", "policies: []", 0},
		{"empty json list", "[]", 0},
		{"bare list", "- {name: a, target: on_cpu, items: [{monitor: process_cpu, threshold: 1, period: 1, count: 1}]}", 1},
		{"json object", `{"policies":[{"name":"a","target":"on_cpu","duration":"1m","items":[{"monitor":"process_cpu","threshold":1,"period":1,"count":1}]}]}`, 1},
		{"json list with tabs", "[\n\t{\"name\":\"a\",\n\t\"target\":\"off_cpu\",\n\t\"selector\":{\"k\":{\"regex\":\"x.*\"},\"n\":5},\n\t\"items\":[{\"monitor\":\"system_load\",\"threshold\":2.0,\"period\":3,\"count\":2}]}\n]", 1},
		{"yaml flow list", "[{name: a, target: on_cpu, items: [{monitor: process_cpu, threshold: 1, period: 1, count: 1}]}]", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := Parse([]byte(tt.doc), "")
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != tt.n {
				t.Fatalf("got %d policies, want %d", len(ps), tt.n)
			}
		})
	}
}

func TestParseJSONSelectorNumber(t *testing.T) {
	ps, err := Parse([]byte(`[{"name":"a","target":"on_cpu","selector":{"n":5,"b":true},"items":[{"monitor":"process_cpu","threshold":1,"period":1,"count":1}]}]`), "")
	if err != nil {
		t.Fatal(err)
	}
	if ps[0].Selector["n"].Exact != "5" || ps[0].Selector["b"].Exact != "true" {
		t.Fatalf("selector = %+v", ps[0].Selector)
	}
}

// base is a valid policy document with one placeholder line per test.
func doc(policy string) string {
	return "policies:\n" + policy
}

func TestParseErrors(t *testing.T) {
	const item = "[{monitor: process_cpu, threshold: 50, period: 10, count: 5}]"
	tests := []struct {
		name string
		doc  string
		want string // substring of the error
	}{
		// document shape
		{"bad yaml", "policies: [", "invalid YAML"},
		{"two documents", "policies: []\n---\npolicies: []\n", "only one document"},
		{"scalar root", "hello", `document must be a list of policies`},
		{"unknown top-level", "policy: []", `unknown top-level field "policy"`},
		{"policies not list", "policies: {a: 1}", "policies: must be a list"},
		{"policy not mapping", "policies: [3]", "policies[0]: a policy must be a mapping, got 3"},
		{"duplicate yaml key", "policies:\n- name: a\n  name: b\n", "already defined"},
		// unknown keys at every level
		{"unknown policy field", doc("- {name: p, target: on_cpu, items: " + item + ", trigger: x}"), `policy "p": unknown field "trigger"`},
		{"unknown item field", doc("- {name: p, target: on_cpu, items: [{monitor: process_cpu, threshold: 5, period: 1, count: 1, uri: /x}]}"), `policy "p": items[0]: unknown field "uri"`},
		{"unknown matcher field", doc("- {name: p, target: on_cpu, selector: {a: {glob: x}}, items: " + item + "}"), `policy "p": selector[a]: unknown field "glob"`},
		{"unknown json field", `{"policies":[{"name":"p","target":"on_cpu","items":[],"extra":1}]}`, `policy "p": unknown field "extra"`},
		// name
		{"name missing", doc("- {target: on_cpu, items: " + item + "}"), "policies[0]: name: is required"},
		{"name upper", doc("- {name: Checkout, target: on_cpu, items: " + item + "}"), `policy "Checkout": name: "Checkout" must match [a-z0-9._-]{1,64}`},
		{"name space", doc("- {name: a b, target: on_cpu, items: " + item + "}"), `name: "a b" must match`},
		{"name too long", doc("- {name: " + strings.Repeat("a", 65) + ", target: on_cpu, items: " + item + "}"), "must match [a-z0-9._-]{1,64}"},
		{"name not string", doc("- {name: 12, target: on_cpu, items: " + item + "}"), "policies[0]: name: must be a string, got 12"},
		{"duplicate name", doc("- {name: p, target: on_cpu, items: " + item + "}\n- {name: p, target: off_cpu, items: " + item + "}"), `policy "p": name: "p" is already used by policies[0]`},
		// selector
		{"selector not map", doc("- {name: p, selector: [a], target: on_cpu, items: " + item + "}"), `policy "p": selector: must be a mapping`},
		{"selector bad regex", doc("- {name: p, selector: {k8s.pod.name: {regex: '(' }}, target: on_cpu, items: " + item + "}"), `policy "p": selector[k8s.pod.name].regex: "(" is not a valid RE2 regex`},
		{"selector empty regex", doc("- {name: p, selector: {a: {regex: ''}}, target: on_cpu, items: " + item + "}"), `selector[a].regex: must not be empty`},
		{"selector regex and exact", doc("- {name: p, selector: {a: {regex: x, exact: y}}, target: on_cpu, items: " + item + "}"), `selector[a]: must have exactly one of regex or exact`},
		{"selector list value", doc("- {name: p, selector: {a: [x]}, target: on_cpu, items: " + item + "}"), `selector[a]: must be a value or {regex: ...}, got a list`},
		{"selector null value", doc("- {name: p, selector: {a: }, target: on_cpu, items: " + item + "}"), `selector[a]: must be a value or {regex: ...}, got nothing`},
		// target
		{"target missing", doc("- {name: p, items: " + item + "}"), `policy "p": target: is required`},
		{"target unknown", doc("- {name: p, target: gpu, items: " + item + "}"), `policy "p": target: "gpu" is not one of on_cpu, off_cpu, network`},
		// duration / silence
		{"duration not duration", doc("- {name: p, target: on_cpu, duration: soon, items: " + item + "}"), `policy "p": duration: "soon" is not a duration`},
		{"duration number", doc("- {name: p, target: on_cpu, duration: 600, items: " + item + "}"), `policy "p": duration: 600 is not a duration`},
		{"duration too long", doc("- {name: p, target: on_cpu, duration: 2h, items: " + item + "}"), `policy "p": duration: 2h0m0s is out of range 1s..1h`},
		{"duration too short", doc("- {name: p, target: on_cpu, duration: 500ms, items: " + item + "}"), `duration: 500ms is out of range 1s..1h`},
		{"duration negative", doc("- {name: p, target: on_cpu, duration: -1m, items: " + item + "}"), `duration: -1m0s is out of range`},
		{"silence negative", doc("- {name: p, target: on_cpu, silence: -5m, items: " + item + "}"), `policy "p": silence: -5m0s is out of range 1s..24h`},
		{"silence too long", doc("- {name: p, target: on_cpu, silence: 25h, items: " + item + "}"), `silence: 25h0m0s is out of range 1s..24h`},
		// items
		{"items missing", doc("- {name: p, target: on_cpu}"), `policy "p": items: at least one item is required`},
		{"items empty", doc("- {name: p, target: on_cpu, items: []}"), `items: at least one item is required`},
		{"items not list", doc("- {name: p, target: on_cpu, items: {monitor: process_cpu}}"), `items: must be a list`},
		{"item not map", doc("- {name: p, target: on_cpu, items: [x]}"), `items[0]: must be a mapping, got "x"`},
		{"monitor missing", doc("- {name: p, target: on_cpu, items: [{threshold: 5, period: 1, count: 1}]}"), `items[0].monitor: is required`},
		{"monitor unknown", doc("- {name: p, target: on_cpu, items: [{monitor: gc_pause, threshold: 5, period: 1, count: 1}]}"), `policy "p": items[0].monitor: "gc_pause" is not one of`},
		{"threshold string", doc("- {name: p, target: on_cpu, items: [{monitor: process_cpu, threshold: high, period: 1, count: 1}]}"), `items[0].threshold: "high" is not a number`},
		{"threshold infinite", doc("- {name: p, target: on_cpu, items: [{monitor: system_load, threshold: .inf, period: 1, count: 1}]}"), `items[0].threshold: +Inf is not a finite number`},
		{"cpu threshold zero", doc("- {name: p, target: on_cpu, items: [{monitor: process_cpu, threshold: 0, period: 1, count: 1}]}"), `items[0].threshold: 0 is out of range (0,100] for process_cpu`},
		{"cpu threshold 101", doc("- {name: p, target: on_cpu, items: [{monitor: process_cpu, threshold: 101, period: 1, count: 1}]}"), `items[0].threshold: 101 is out of range (0,100]`},
		{"error rate threshold 100.5", doc("- {name: p, target: network, items: [{monitor: http_error_rate, threshold: 100.5, period: 1, count: 1}]}"), `items[0].threshold: 100.5 is out of range (0,100] for http_error_rate`},
		{"thread threshold negative", doc("- {name: p, target: on_cpu, items: [{monitor: process_thread_count, threshold: -3, period: 1, count: 1}]}"), `items[0].threshold: -3 must be greater than 0`},
		{"load threshold zero", doc("- {name: p, target: on_cpu, items: [{monitor: system_load, threshold: 0, period: 1, count: 1}]}"), `items[0].threshold: 0 must be greater than 0`},
		{"rt threshold zero", doc("- {name: p, target: network, items: [{monitor: http_avg_response_time, threshold: 0, period: 1, count: 1}]}"), `items[0].threshold: 0 must be greater than 0`},
		{"period zero", doc("- {name: p, target: on_cpu, items: [{monitor: process_cpu, threshold: 5, period: 0, count: 1}]}"), `items[0].period: 0 is out of range 1..3600`},
		{"period too big", doc("- {name: p, target: on_cpu, items: [{monitor: process_cpu, threshold: 5, period: 3601, count: 1}]}"), `items[0].period: 3601 is out of range 1..3600`},
		{"period fraction", doc("- {name: p, target: on_cpu, items: [{monitor: process_cpu, threshold: 5, period: 2.5, count: 1}]}"), `items[0].period: 2.5 is not a whole number`},
		{"count zero", doc("- {name: p, target: on_cpu, items: [{monitor: process_cpu, threshold: 5, period: 10, count: 0}]}"), `items[0].count: 0 must be at least 1`},
		{"count > period", doc("- {name: checkout-cpu, target: on_cpu, items: [{monitor: process_cpu, threshold: 5, period: 10, count: 12}]}"), `policy "checkout-cpu": items[0].count: 12 is greater than period 10`},
		{"second item", doc("- {name: p, target: on_cpu, items: [{monitor: process_cpu, threshold: 5, period: 10, count: 1}, {monitor: process_cpu, threshold: 5, period: 10, count: 11}]}"), `items[1].count: 11 is greater than period 10`},
		{"uri_regex on cpu", doc("- {name: p, target: on_cpu, items: [{monitor: process_cpu, threshold: 5, period: 1, count: 1, uri_regex: x}]}"), `items[0].uri_regex: is set on monitor process_cpu; URI filters apply only to http_error_rate`},
		{"uri_list on load", doc("- {name: p, target: on_cpu, items: [{monitor: system_load, threshold: 5, period: 1, count: 1, uri_list: [/a]}]}"), `items[0].uri_list: is set on monitor system_load`},
		{"uri both", doc("- {name: p, target: network, items: [{monitor: http_error_rate, threshold: 5, period: 1, count: 1, uri_regex: x, uri_list: [/a]}]}"), `items[0].uri_regex: "x" and uri_list are mutually exclusive`},
		{"uri bad regex", doc("- {name: p, target: network, items: [{monitor: http_error_rate, threshold: 5, period: 1, count: 1, uri_regex: '[a'}]}"), `items[0].uri_regex: "[a" is not a valid RE2 regex`},
		{"uri_list empty entry", doc("- {name: p, target: network, items: [{monitor: http_error_rate, threshold: 5, period: 1, count: 1, uri_list: ['']}]}"), `items[0].uri_list[0]: must not be empty`},
		{"uri_list not strings", doc("- {name: p, target: network, items: [{monitor: http_error_rate, threshold: 5, period: 1, count: 1, uri_list: [{a: b}]}]}"), `items[0].uri_list[0]: must be a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := Parse([]byte(tt.doc), "src.yaml")
			if err == nil {
				t.Fatalf("no error; got %+v", ps)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "src.yaml: ") {
				t.Fatalf("error %q does not name the source", err)
			}
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	ps := []Policy{{
		Name:   "p",
		Target: "x",
		Items:  []Item{{Monitor: MonitorProcessCPU, Threshold: 200, Period: 10, Count: 20}},
	}}
	err := Validate(ps)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`policy "p": target: "x"`, `policy "p": items[0].threshold: 200`, `policy "p": items[0].count: 20 is greater than period 10`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestValidateExactAndRegex(t *testing.T) {
	ps := []Policy{{Name: "p", Target: TargetOnCPU, Selector: Selector{"a": {Exact: "x", Regex: "y"}},
		Items: []Item{{Monitor: MonitorProcessCPU, Threshold: 1, Period: 1, Count: 1}}}}
	if err := Validate(ps); err == nil || !strings.Contains(err.Error(), `selector[a]: exact "x" and regex "y" are mutually exclusive`) {
		t.Fatalf("err = %v", err)
	}
	ps[0].Selector = Selector{"": {Exact: "x"}}
	if err := Validate(ps); err == nil || !strings.Contains(err.Error(), `selector: attribute name must not be empty`) {
		t.Fatalf("err = %v", err)
	}
}

func TestSkyWalkingFieldsExpressible(t *testing.T) {
	// SkyWalking's ContinuousProfilingPolicy: service, targetType
	// (ON_CPU/OFF_CPU/NETWORK), checkItems {type, threshold, period, count,
	// uriList | uriRegex}; every check type maps to a monitor.
	for _, target := range []string{"on_cpu", "off_cpu", "network"} {
		for _, m := range Monitors {
			extra := ""
			if m.IsHTTP() {
				extra = ", uri_list: [/a, /b]"
			}
			d := doc("- {name: sw, selector: {service.name: svc}, target: " + target + ", items: [{monitor: " + string(m) + ", threshold: 50, period: 10, count: 3" + extra + "}]}")
			if _, err := Parse([]byte(d), ""); err != nil {
				t.Errorf("%s/%s: %v", target, m, err)
			}
		}
	}
}

func TestMatch(t *testing.T) {
	ps, err := Parse([]byte(goodYAML), "")
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string]string{"service.name": "checkout", "host.name": "web-12"}
	get := func(k string) (string, bool) { v, ok := attrs[k]; return v, ok }
	if !ps[0].Selector.Matches(get) {
		t.Fatal("should match")
	}
	attrs["host.name"] = "db-1"
	if ps[0].Selector.Matches(get) {
		t.Fatal("regex should not match db-1")
	}
	delete(attrs, "host.name")
	if ps[0].Selector.Matches(get) {
		t.Fatal("missing attribute should not match")
	}
	if !ps[2].Selector.Matches(get) {
		t.Fatal("empty selector matches everything")
	}
	// Unvalidated matchers still work (compiled per call).
	m := Matcher{Regex: "^a+$"}
	if !m.Matches("aaa") || m.Matches("b") || m.re != nil {
		t.Fatal("unvalidated regex matcher")
	}
	bad := Matcher{Regex: "("}
	if bad.Matches("(") {
		t.Fatal("invalid regex must not match")
	}

	re, list, none := ps[1].Items[0], ps[1].Items[1], ps[2].Items[0]
	if !re.MatchURI("/api/cart") || re.MatchURI("/health") {
		t.Fatal("uri_regex")
	}
	if !list.MatchURI("/api/pay") || list.MatchURI("/api/pay/2") {
		t.Fatal("uri_list")
	}
	if !none.MatchURI("/anything") || none.HasURIFilter() || !re.HasURIFilter() {
		t.Fatal("no filter")
	}
}

// Validated policies are read concurrently without writes (run with -race).
func TestConcurrentMatchAndRevalidate(t *testing.T) {
	ps, err := Parse([]byte(goodYAML), "")
	if err != nil {
		t.Fatal(err)
	}
	get := func(k string) (string, bool) { return "web-1", true }
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				ps[0].Selector.Matches(get)
				ps[1].Items[0].MatchURI("/api/x")
			}
		}()
	}
	for range 20 {
		if err := Validate(ps); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}

func TestSetVersion(t *testing.T) {
	ps, err := Parse([]byte(goodYAML), "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	s1 := NewSet(ps, now)
	if len(s1.Version) != 16 || !s1.LoadedAt.Equal(now) || s1.Len() != 3 {
		t.Fatalf("set = %+v", s1)
	}
	rev := []Policy{ps[2], ps[0], ps[1]}
	if v := NewSet(rev, now).Version; v != s1.Version {
		t.Fatalf("order changed version: %s vs %s", v, s1.Version)
	}
	ps2, _ := Parse([]byte(strings.Replace(goodYAML, "threshold: 80", "threshold: 81", 1)), "")
	if v := NewSet(ps2, now).Version; v == s1.Version {
		t.Fatal("content change kept the version")
	}
	if s1.Lookup("load") == nil || s1.Lookup("nope") != nil {
		t.Fatal("Lookup")
	}
	var nilSet *Set
	if nilSet.Len() != 0 || nilSet.Lookup("x") != nil {
		t.Fatal("nil set")
	}
	if NewSet(nil, now).Version == s1.Version {
		t.Fatal("empty set version")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	ps, err := Parse([]byte(goodYAML), "")
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(map[string]any{"policies": ps})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"duration":"30s"`) || !strings.Contains(string(data), `"host.name":{"regex":"^web-[0-9]+$"}`) || !strings.Contains(string(data), `"service.name":"checkout"`) {
		t.Fatalf("wire form: %s", data)
	}
	back, err := Parse(data, "")
	if err != nil {
		t.Fatal(err)
	}
	if Version(back) != Version(ps) {
		t.Fatal("JSON round trip changed the version")
	}
	// Unmarshalers on the types.
	var p Policy
	if err := json.Unmarshal([]byte(`{"name":"x","target":"on_cpu","duration":"2m","selector":{"a":{"regex":"b"}},"items":[]}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.Duration != 2*time.Minute || p.Selector["a"].Regex != "b" {
		t.Fatalf("p = %+v", p)
	}
	if err := json.Unmarshal([]byte(`{"name":"x","bogus":1}`), &p); err == nil || !strings.Contains(err.Error(), `unknown field "bogus"`) {
		t.Fatalf("err = %v", err)
	}
	var m Matcher
	if err := json.Unmarshal([]byte(`"v"`), &m); err != nil || m.Exact != "v" {
		t.Fatalf("%v %+v", err, m)
	}
	if err := json.Unmarshal([]byte(`{"regex":"v.*"}`), &m); err != nil || m.Regex != "v.*" || m.Exact != "" {
		t.Fatalf("%v %+v", err, m)
	}
	if err := json.Unmarshal([]byte(`{"glob":"v"}`), &m); err == nil {
		t.Fatal("glob accepted")
	}
}

func TestYAMLUnmarshalers(t *testing.T) {
	var out struct {
		P Policy
		M Matcher
	}
	err := yaml.Unmarshal([]byte("p: {name: x, target: off_cpu, silence: 1m, items: [{monitor: system_load, threshold: 1, period: 1, count: 1}]}\nm: {regex: '^a'}\n"), &out)
	if err != nil {
		t.Fatal(err)
	}
	if out.P.Silence != time.Minute || out.M.Regex != "^a" {
		t.Fatalf("%+v", out)
	}
	y, err := yaml.Marshal(map[string]Matcher{"a": {Exact: "x"}, "b": {Regex: "y"}})
	if err != nil || string(y) != "a: x\nb:\n    regex: \"y\"\n" {
		t.Fatalf("%v %q", err, y)
	}
	if err := yaml.Unmarshal([]byte("p: {name: x, bogus: 1}"), &out); err == nil || !strings.Contains(err.Error(), `unknown field "bogus"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestDecodeConfmapShapes(t *testing.T) {
	// What the Collector's confmap hands the extension for inline policies.
	raw := []any{map[string]any{
		"name":     "inline",
		"selector": map[string]any{"service.name": "checkout", "k8s.pod.name": map[string]any{"regex": "^co-"}},
		"target":   "on_cpu",
		"duration": "45s",
		"items":    []any{map[string]any{"monitor": "process_cpu", "threshold": 80, "period": 10, "count": uint64(5)}},
	}}
	ps, err := Decode(raw, "policies")
	if err != nil {
		t.Fatal(err)
	}
	if ps[0].Duration != 45*time.Second || ps[0].Items[0].Count != 5 || ps[0].Selector["k8s.pod.name"].re == nil {
		t.Fatalf("%+v", ps[0])
	}
	_, err = Decode([]any{map[string]any{"name": "inline", "target": "on_cpu", "items": []any{map[string]any{"monitor": "process_cpu", "threshold": 80, "period": 10, "count": 12}}}}, "policies")
	if err == nil || err.Error() != `policies: policy "inline": items[0].count: 12 is greater than period 10` {
		t.Fatalf("err = %v", err)
	}
}

func TestAttrMap(t *testing.T) {
	get := AttrMap(map[string]any{"service.name": "checkout", "process.pid": int64(42)})
	if v, ok := get("service.name"); !ok || v != "checkout" {
		t.Fatalf("service.name: %q %v", v, ok)
	}
	if v, ok := get("process.pid"); !ok || v != "42" {
		t.Fatalf("process.pid: %q %v", v, ok)
	}
	if _, ok := get("container.id"); ok {
		t.Fatal("absent attribute found")
	}
	sel := Selector{"process.pid": {Exact: "42"}}
	if err := sel.Compile(); err != nil || !sel.Matches(get) {
		t.Fatalf("selector on a number attribute: %v", err)
	}
}
