package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestLookbackDefaults(t *testing.T) {
	const item = "[{monitor: process_cpu, threshold: 50, period: 10, count: 5}]"
	ps, err := Parse([]byte(doc(
		"- {name: on, target: on_cpu, items: "+item+"}\n"+
			"- {name: off, target: off_cpu, items: "+item+"}\n"+
			"- {name: net, target: network, items: "+item+"}\n"+
			"- {name: on-off, target: on_cpu, lookback: 0s, items: "+item+"}\n"+
			"- {name: on-30, target: on_cpu, lookback: 30s, items: "+item+"}\n"+
			"- {name: off-60, target: off_cpu, lookback: 60s, items: "+item+"}\n")), "test")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{"on": DefaultLookback, "off": 0, "net": 0, "on-off": 0, "on-30": 30 * time.Second, "off-60": time.Minute}
	for _, p := range ps {
		if p.Lookback != want[p.Name] {
			t.Errorf("%s: lookback %v, want %v", p.Name, p.Lookback, want[p.Name])
		}
	}
	// An explicit 0 survives a round trip through JSON (the API's form).
	b, err := json.Marshal(ps[3])
	if err != nil || !strings.Contains(string(b), `"lookback":"0s"`) {
		t.Fatalf("marshal: %s, %v", b, err)
	}
	var back Policy
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := Validate([]Policy{back}); err != nil || back.Lookback != 0 {
		t.Errorf("round trip: lookback %v, %v; want 0", back.Lookback, err)
	}
}

func TestLookbackErrors(t *testing.T) {
	const item = "[{monitor: process_cpu, threshold: 50, period: 10, count: 5}]"
	for _, c := range []struct{ lookback, target, want string }{
		{"61s", "on_cpu", `policy "p": lookback: 1m1s is out of range 0..1m0s`},
		{"-1s", "on_cpu", `policy "p": lookback: -1s is out of range 0..1m0s`},
		{"500ms", "on_cpu", `policy "p": lookback: 500ms is shorter than 1s (use 0 for off)`},
		{"10s", "network", `policy "p": lookback: 10s is set on target network; lookback is recorded for on_cpu and off_cpu only`},
		{"61s", "off_cpu", `policy "p": lookback: 1m1s is out of range 0..1m0s`},
		{"500ms", "off_cpu", `policy "p": lookback: 500ms is shorter than 1s (use 0 for off)`},
		{"ten", "on_cpu", `policy "p": lookback: "ten" is not a duration`},
	} {
		_, err := Parse([]byte(doc("- {name: p, target: "+c.target+", lookback: "+c.lookback+", items: "+item+"}")), "test")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("lookback %s on %s: %v, want %q", c.lookback, c.target, err, c.want)
		}
	}
}
