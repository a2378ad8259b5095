package render

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// Capabilities lists the capabilities a container adds, as written.
func Capabilities(c corev1.Container) []string {
	var out []string
	if c.SecurityContext != nil && c.SecurityContext.Capabilities != nil {
		for _, a := range c.SecurityContext.Capabilities.Add {
			out = append(out, string(a))
		}
	}
	return out
}

// CollectorConfig is config.yaml of the rendered config ConfigMap.
func CollectorConfig(t testing.TB, o *Objects) string {
	t.Helper()
	for _, cm := range o.ConfigMaps {
		if c, ok := cm.Data["config.yaml"]; ok {
			return c
		}
	}
	t.Fatal("no ConfigMap with config.yaml")
	return ""
}

// SetprivCaps is the capability list in setpriv's syntax: "+bpf,+perfmon".
func SetprivCaps(caps []string) string {
	parts := make([]string, len(caps))
	for i, c := range caps {
		parts[i] = "+" + strings.ToLower(c)
	}
	return strings.Join(parts, ",")
}
