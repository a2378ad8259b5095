package control

import (
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
)

type host map[component.ID]component.Component

func (h host) GetExtensions() map[component.ID]component.Component { return h }

type schedulerExt struct {
	component.StartFunc
	component.ShutdownFunc
}

func (schedulerExt) RequestTask(TaskRequest) (string, error) { return "t", nil }

type otherExt struct {
	component.StartFunc
	component.ShutdownFunc
}

func TestFind(t *testing.T) {
	a, b := component.MustNewIDWithName("profilingpolicy", "a"), component.MustNewIDWithName("profilingpolicy", "b")
	other := component.MustNewID("other")
	one := host{a: &schedulerExt{}, other: &otherExt{}}
	if s, err := Find[Scheduler](one, component.ID{}); err != nil || s != one[a].(Scheduler) {
		t.Fatalf("the only one: %v %v", s, err)
	}
	if s, err := Find[Scheduler](one, a); err != nil || s != one[a].(Scheduler) {
		t.Fatalf("by id: %v %v", s, err)
	}
	two := host{a: &schedulerExt{}, b: &schedulerExt{}}
	if s, err := Find[Scheduler](two, b); err != nil || s != two[b].(Scheduler) {
		t.Fatalf("named among two: %v %v", s, err)
	}
	for _, tc := range []struct {
		name string
		h    host
		id   component.ID
		want string
	}{
		{"none", host{other: &otherExt{}}, component.ID{}, "no profilingpolicy extension is configured"},
		{"several", two, component.ID{}, "several profilingpolicy extensions are configured; name one"},
		{"not one", one, other, "extension other is not configured or is not a profilingpolicy extension"},
		{"missing", one, b, "extension profilingpolicy/b is not configured"},
	} {
		if _, err := Find[Scheduler](tc.h, tc.id); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}
