package policy

import (
	"fmt"
	"regexp"
)

// Matches reports whether every condition of the selector holds for the
// attributes given by get. An empty selector matches every process.
func (s Selector) Matches(get func(key string) (string, bool)) bool {
	for k, m := range s {
		v, ok := get(k)
		if !ok || !m.Matches(v) {
			return false
		}
	}
	return true
}

// Matches reports whether v satisfies the matcher. Validate compiles the
// regex up front; a matcher that was never validated compiles it on every
// call rather than caching it, because caching here would be a data race
// between concurrent readers.
func (m *Matcher) Matches(v string) bool {
	if m.Regex == "" {
		return m.Exact == v
	}
	return matchRegex(m.re, m.Regex, v)
}

// HasURIFilter reports whether the item restricts which request paths count.
func (it *Item) HasURIFilter() bool { return it.URIRegex != "" || len(it.URIList) > 0 }

// MatchURI reports whether a request path counts for this item.
func (it *Item) MatchURI(path string) bool {
	if len(it.URIList) > 0 {
		for _, u := range it.URIList {
			if u == path {
				return true
			}
		}
		return false
	}
	if it.URIRegex == "" {
		return true
	}
	return matchRegex(it.uriRe, it.URIRegex, path)
}

// matchRegex matches v against re, the compiled expr, or compiles expr
// when it was not (a value built without Validate); an invalid expr
// matches nothing.
func matchRegex(re *regexp.Regexp, expr, v string) bool {
	if re == nil {
		var err error
		if re, err = regexp.Compile(expr); err != nil {
			return false
		}
	}
	return re.MatchString(v)
}

// AttrMap lets a selector read resource attributes held in a map (as the
// processor and the extension hold them): non-string values are compared
// in their text form.
func AttrMap(attrs map[string]any) func(key string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := attrs[k]
		if !ok {
			return "", false
		}
		if s, ok := v.(string); ok {
			return s, true
		}
		return fmt.Sprint(v), true
	}
}
