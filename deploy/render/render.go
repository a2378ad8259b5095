// Package render renders the contprof Helm chart with Helm's Go library and
// decodes every object strictly into the official Kubernetes API types.
package render

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// ChartDir is deploy/helm/contprof.
func ChartDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "helm", "contprof")
}

// Release names the release the rendered manifests in deploy/kubernetes
// are for.
const (
	ReleaseName = "contprof"
	Namespace   = "contprof"
)

// Manifests renders the chart with values over its defaults, as `helm
// template` would: the documents in file order.
func Manifests(values map[string]any) ([]string, error) {
	ch, err := loader.Load(ChartDir())
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	vals, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{
		Name: ReleaseName, Namespace: Namespace, IsInstall: true, Revision: 1,
	}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		if strings.HasSuffix(n, ".yaml") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var docs []string
	for _, n := range names {
		for _, d := range strings.Split(files[n], "\n---") {
			if strings.TrimSpace(stripComments(d)) != "" {
				docs = append(docs, strings.TrimSpace(d)+"\n")
			}
		}
	}
	return docs, nil
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// Objects are the rendered objects, decoded.
type Objects struct {
	DaemonSets          []*appsv1.DaemonSet
	ConfigMaps          []*corev1.ConfigMap
	ServiceAccounts     []*corev1.ServiceAccount
	Namespaces          []*corev1.Namespace
	ClusterRoles        []*rbacv1.ClusterRole
	ClusterRoleBindings []*rbacv1.ClusterRoleBinding
}

// Decode decodes each document strictly into its official API type: an
// unknown kind, an unknown or misspelt field, or a value of the wrong type
// is an error naming the document.
func Decode(docs []string) (*Objects, error) {
	o := &Objects{}
	for i, d := range docs {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(d), &head); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		var target any
		switch head.APIVersion + "/" + head.Kind {
		case "apps/v1/DaemonSet":
			target = appendNew(&o.DaemonSets)
		case "v1/ConfigMap":
			target = appendNew(&o.ConfigMaps)
		case "v1/ServiceAccount":
			target = appendNew(&o.ServiceAccounts)
		case "v1/Namespace":
			target = appendNew(&o.Namespaces)
		case "rbac.authorization.k8s.io/v1/ClusterRole":
			target = appendNew(&o.ClusterRoles)
		case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
			target = appendNew(&o.ClusterRoleBindings)
		default:
			return nil, fmt.Errorf("document %d: kind %s %s: no API type known to this test", i, head.APIVersion, head.Kind)
		}
		js, err := yaml.YAMLToJSONStrict([]byte(d))
		if err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, head.Kind, err)
		}
		// Case-sensitive, unknown fields and duplicates are errors (the
		// API server's strict field validation); encoding/json would take
		// hostPid for hostPID.
		strict, err := kjson.UnmarshalStrict(js, target)
		if err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, head.Kind, err)
		}
		if len(strict) > 0 {
			return nil, fmt.Errorf("document %d (%s): %v", i, head.Kind, errors.Join(strict...))
		}
	}
	return o, nil
}

// NamespaceManifest is the Namespace the plain manifests create.
func NamespaceManifest() string {
	return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + Namespace + "\n  labels:\n    app.kubernetes.io/name: contprof\n"
}

// Plain is deploy/kubernetes/contprof.yaml: the namespace and the chart
// rendered with its default values.
func Plain() ([]byte, error) {
	docs, err := Manifests(nil)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("# Rendered from deploy/helm/contprof with its default values\n# (cd deploy && go run ./cmd/render); do not edit.\n")
	b.WriteString("---\n" + NamespaceManifest())
	for _, d := range docs {
		b.WriteString("---\n" + d)
	}
	return b.Bytes(), nil
}

// appendNew appends a new, empty *T to list and returns it to decode into.
func appendNew[T any](list *[]*T) *T {
	x := new(T)
	*list = append(*list, x)
	return x
}
