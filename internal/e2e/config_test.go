package e2e

import (
	"fmt"
	"strings"
)

// testConfig describes a collector configuration of the distribution: the
// three contprof components wired as docs/design.md shows, with what a scenario
// varies.
type testConfig struct {
	// Policies is the YAML list of inline policies (may be empty).
	Policies string
	// APIPort is the extension's API port on 127.0.0.1 (0: any).
	APIPort int
	// Receiver holds extra ebpfprocess settings as YAML lines.
	Receiver string
	// OTLP is the sink's address; empty exports to debug.
	OTLP string
	// Signals lists the pipelines besides metrics: "profiles", "logs".
	Signals []string
	// Extensions holds other extensions as YAML (name: settings lines);
	// they are started before profilingpolicy.
	Extensions string
	// ExtensionNames lists the names defined in Extensions.
	ExtensionNames []string
	// Processor holds continuousprofiling settings as YAML lines.
	Processor string
	// API and Policy hold extra api and profilingpolicy settings as YAML lines.
	API    string
	Policy string
}

// yaml renders the configuration.
func (c testConfig) yaml() string {
	var b strings.Builder
	b.WriteString("extensions:\n  profilingpolicy:\n")
	if c.Policies != "" {
		b.WriteString("    policies:\n" + indent(c.Policies, "      "))
	}
	b.WriteString(indent(c.Policy, "    "))
	fmt.Fprintf(&b, "    api:\n      endpoint: \"127.0.0.1:%d\"\n", c.APIPort)
	b.WriteString(indent(c.API, "      "))
	b.WriteString(indent(c.Extensions, "  "))
	b.WriteString("receivers:\n  ebpfprocess:\n    collection_interval: 1s\n" + indent(c.Receiver, "    "))
	if c.Processor == "" {
		b.WriteString("processors:\n  continuousprofiling: {}\n")
	} else {
		b.WriteString("processors:\n  continuousprofiling:\n" + indent(c.Processor, "    "))
	}
	exporter := "debug"
	if c.OTLP != "" {
		exporter = "otlp_grpc"
		fmt.Fprintf(&b, "exporters:\n  otlp_grpc:\n    endpoint: %s\n    tls: { insecure: true }\n", c.OTLP)
	} else {
		b.WriteString("exporters:\n  debug: {}\n")
	}
	fmt.Fprintf(&b, "service:\n  extensions: [%s]\n  pipelines:\n", strings.Join(append(c.ExtensionNames, "profilingpolicy"), ", "))
	fmt.Fprintf(&b, "    metrics:\n      receivers: [ebpfprocess]\n      processors: [continuousprofiling]\n      exporters: [%s]\n", exporter)
	for _, s := range c.Signals {
		fmt.Fprintf(&b, "    %s:\n      receivers: [ebpfprocess]\n      exporters: [%s]\n", s, exporter)
	}
	return b.String()
}

// indent prefixes every non-empty line of the dedented YAML block s.
func indent(s, prefix string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	margin := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if n := len(l) - len(strings.TrimLeft(l, " ")); margin < 0 || n < margin {
			margin = n
		}
	}
	var b strings.Builder
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		b.WriteString(prefix + l[margin:] + "\n")
	}
	return b.String()
}
