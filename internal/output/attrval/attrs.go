// Package attrval reads OpenTelemetry attributes whose value type depends on
// who wrote them: an integer may come as an int, a double or a string.
package attrval

import (
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Int reads an integer attribute given as an int, a double or a string;
// false when it is missing or holds no integer.
func Int(m pcommon.Map, key string) (int64, bool) {
	v, ok := m.Get(key)
	if !ok {
		return 0, false
	}
	switch v.Type() {
	case pcommon.ValueTypeInt:
		return v.Int(), true
	case pcommon.ValueTypeDouble:
		return int64(v.Double()), true
	case pcommon.ValueTypeStr:
		n, err := strconv.ParseInt(v.Str(), 10, 64)
		return n, err == nil
	}
	return 0, false
}
