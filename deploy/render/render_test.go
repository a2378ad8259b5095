package render

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func objects(t *testing.T, values map[string]any) *Objects {
	t.Helper()
	docs, err := Manifests(values)
	if err != nil {
		t.Fatal(err)
	}
	o, err := Decode(docs)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// The chart's objects decode strictly into the official API types and the
// DaemonSet is what a node agent needs, nothing more.
func TestChartDaemonSet(t *testing.T) {
	o := objects(t, nil)
	if len(o.DaemonSets) != 1 || len(o.ConfigMaps) != 2 || len(o.ServiceAccounts) != 1 || len(o.ClusterRoles) != 0 || len(o.ClusterRoleBindings) != 0 {
		t.Fatalf("objects: %d DaemonSets, %d ConfigMaps, %d ServiceAccounts, %d ClusterRoles, %d bindings",
			len(o.DaemonSets), len(o.ConfigMaps), len(o.ServiceAccounts), len(o.ClusterRoles), len(o.ClusterRoleBindings))
	}
	ds := o.DaemonSets[0]
	spec := ds.Spec.Template.Spec
	if !spec.HostPID {
		t.Error("hostPID is not set")
	}
	if spec.HostNetwork {
		t.Error("hostNetwork is set; the agent does not need it")
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Privileged == nil || *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Fatalf("security context %+v: want privileged false, no privilege escalation", sc)
	}
	if got := Capabilities(ds.Spec.Template.Spec.Containers[0]); !slices.Equal(got, []string{"BPF", "PERFMON", "SYS_PTRACE", "DAC_READ_SEARCH"}) {
		t.Errorf("capabilities %v", got)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities %+v: want drop ALL", sc.Capabilities)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	for _, p := range []string{"/sys/kernel/tracing", "/sys/fs/cgroup"} {
		m, ok := mounts[p]
		if !ok || !m.ReadOnly || hostPaths[m.Name] != p {
			t.Errorf("%s: mount %+v (host path %q): want the host's, read-only", p, m, hostPaths[m.Name])
		}
	}
	if m := mounts["/etc/contprof/policies"]; !m.ReadOnly {
		t.Errorf("policies mount %+v", m)
	}
	if len(spec.Tolerations) != 1 || spec.Tolerations[0].Operator != corev1.TolerationOpExists || spec.Tolerations[0].Key != "" {
		t.Errorf("tolerations %+v: want one that tolerates every taint", spec.Tolerations)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
	if !slices.Contains(c.Args, "--feature-gates=service.profilesSupport") {
		t.Errorf("args %v: no profiles feature gate", c.Args)
	}
	var node bool
	for _, e := range c.Env {
		node = node || (e.Name == "K8S_NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName")
	}
	if !node {
		t.Errorf("env %+v: no K8S_NODE_NAME from spec.nodeName", c.Env)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.ReadinessProbe == nil {
		t.Errorf("probes: liveness %+v readiness %+v", c.LivenessProbe, c.ReadinessProbe)
	}

	cfg := CollectorConfig(t, o)
	for _, want := range []string{
		"policy_file: /etc/contprof/policies/policies.yaml",
		"host_name: ${env:K8S_NODE_NAME}",
		`endpoint: "otel-gateway.observability.svc:4317"`,
		"health_check:",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("collector config lacks %q:\n%s", want, cfg)
		}
	}
	var pol struct {
		Policies []map[string]any `json:"policies"`
	}
	if err := yaml.UnmarshalStrict([]byte(policiesOf(o)), &pol); err != nil || len(pol.Policies) != 2 {
		t.Errorf("policies document: %v %+v", err, pol)
	}
}

// Values change what they should.
func TestChartValues(t *testing.T) {
	o := objects(t, map[string]any{
		"exporter": map[string]any{"endpoint": "gw.example:4317", "insecure": false, "headers": map[string]any{"x-team": "perf"}},
		"policies": []any{map[string]any{"name": "x", "target": "on_cpu", "items": []any{map[string]any{"monitor": "process_cpu", "threshold": 50, "period": 5, "count": 2}}}},
	})
	cfg := CollectorConfig(t, o)
	if !strings.Contains(cfg, `endpoint: "gw.example:4317"`) ||
		!strings.Contains(cfg, "insecure: false") || !strings.Contains(cfg, `"x-team":"perf"`) {
		t.Errorf("config:\n%s", cfg)
	}
	if !strings.Contains(policiesOf(o), "name: x") {
		t.Errorf("policies:\n%s", policiesOf(o))
	}
}

// deploy/kubernetes/contprof.yaml is the chart rendered now.
func TestPlainManifestsUpToDate(t *testing.T) {
	want, err := Plain()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(ChartDir(), "..", "..", "kubernetes", "contprof.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("deploy/kubernetes/contprof.yaml is stale: run (cd deploy && go run ./cmd/render)")
	}
	docs := strings.Split(string(got), "\n---\n")
	if _, err := Decode(docs[1:]); err != nil {
		t.Fatal(err)
	}
}

// Strict decoding catches a misspelt field.
func TestDecodeIsStrict(t *testing.T) {
	_, err := Decode([]string{"apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      hostPid: true\n"})
	if err == nil || !strings.Contains(err.Error(), "hostPid") {
		t.Fatalf("error %v: want the unknown field named", err)
	}
	_, err = Decode([]string{"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\nbinaryData: {c: 1}\n"})
	if err == nil {
		t.Fatal("a value of the wrong type accepted")
	}
	if _, err := Decode([]string{"apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n"}); err == nil {
		t.Fatal("unknown kind accepted")
	}
}

func policiesOf(o *Objects) string {
	for _, cm := range o.ConfigMaps {
		if p, ok := cm.Data["policies.yaml"]; ok {
			return p
		}
	}
	return ""
}
