package policy

import "regexp"

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

// Matches reports whether v satisfies the matcher.
func (m *Matcher) Matches(v string) bool {
	if m.Regex != "" {
		if m.re == nil {
			re, err := regexp.Compile(m.Regex)
			if err != nil {
				return false
			}
			m.re = re
		}
		return m.re.MatchString(v)
	}
	return m.Exact == v
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
	if it.URIRegex != "" {
		if it.uriRe == nil {
			re, err := regexp.Compile(it.URIRegex)
			if err != nil {
				return false
			}
			it.uriRe = re
		}
		return it.uriRe.MatchString(path)
	}
	return true
}
