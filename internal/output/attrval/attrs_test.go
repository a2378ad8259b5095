package attrval

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

func TestInt(t *testing.T) {
	m := pcommon.NewMap()
	m.PutInt("i", 7)
	m.PutDouble("d", 8.9)
	m.PutStr("s", "9")
	m.PutStr("bad", "x")
	m.PutBool("b", true)
	for _, tc := range []struct {
		key  string
		want int64
		ok   bool
	}{{"i", 7, true}, {"d", 8, true}, {"s", 9, true}, {"bad", 0, false}, {"b", 0, false}, {"missing", 0, false}} {
		got, ok := Int(m, tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Int(%q) = %d, %v; want %d, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
}
