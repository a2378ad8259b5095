package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Parse decodes policies from a YAML or JSON document, fills in defaults and
// validates them. The document is either a list of policies or a mapping
// whose only key is "policies". Unknown keys are errors. source (a file
// path, a URL) prefixes every error so the operator knows where to look.
func Parse(data []byte, source string) ([]Policy, error) {
	root, err := decodeDocument(data)
	if err != nil {
		return nil, withSource(source, err)
	}
	if err := checkNotEmpty(root); err != nil {
		return nil, withSource(source, err)
	}
	ps, err := Decode(root, source)
	if err != nil {
		return nil, err
	}
	return ps, nil
}

// ErrEmptyDocument is returned for a document with no policy list at all.
// An editor that truncates a file before writing it, or a server answering
// with an empty body, produces one; taking it as "no policies" would drop
// every policy of the source, so only an explicit empty list means that.
var ErrEmptyDocument = errors.New("document is empty (or only comments, or \"policies\" has no value); write \"policies: []\" to mean no policies")

func checkNotEmpty(root any) error {
	if root == nil {
		return ErrEmptyDocument
	}
	if m, ok := asMap(root); ok {
		if v, has := m["policies"]; has && v == nil {
			return ErrEmptyDocument
		}
	}
	return nil
}

// Decode turns an already decoded document tree (what encoding/json,
// yaml.v3 or the Collector's confmap produce: maps, slices, strings, numbers)
// into validated policies. It is the one decoder behind Parse, the JSON and
// YAML unmarshalers and the extension's inline `policies:` setting.
func Decode(root any, source string) ([]Policy, error) {
	list, err := policyList(root)
	if err != nil {
		return nil, withSource(source, err)
	}
	ps := make([]Policy, 0, len(list))
	var errs []error
	for i, v := range list {
		p, err := decodePolicy(v, i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ps = append(ps, p)
	}
	if len(errs) > 0 {
		return nil, withSource(source, errors.Join(errs...))
	}
	if err := Validate(ps); err != nil {
		return nil, withSource(source, err)
	}
	return ps, nil
}

func withSource(source string, err error) error {
	if source == "" || err == nil {
		return err
	}
	return fmt.Errorf("%s: %w", source, err)
}

// decodeDocument reads data as JSON when it is valid JSON (so tab-indented
// JSON, which YAML rejects, works) and as YAML otherwise.
func decodeDocument(data []byte) (any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	if json.Valid(data) {
		return decodeJSON(data)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root any
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // only comments
		}
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid YAML: only one document is allowed")
	}
	return root, nil
}

func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("invalid JSON: only one value is allowed")
	}
	return root, nil
}

func policyList(root any) ([]any, error) {
	switch r := root.(type) {
	case nil:
		return nil, nil
	case []any:
		return r, nil
	}
	m, ok := asMap(root)
	if !ok {
		return nil, fmt.Errorf("document must be a list of policies or a mapping with a \"policies\" list, got %s", describe(root))
	}
	for k := range m {
		if k != "policies" {
			return nil, fmt.Errorf("unknown top-level field %q (expected \"policies\")", k)
		}
	}
	switch l := m["policies"].(type) {
	case nil:
		return nil, nil
	case []any:
		return l, nil
	default:
		return nil, fmt.Errorf("policies: must be a list, got %s", describe(l))
	}
}

// asMap accepts the map shapes decoders produce; yaml.v3 yields
// map[any]any when some key is not a string.
func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out, true
	}
	return nil, false
}

// sortedKeys makes error order deterministic.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "nothing"
	case string:
		return strconv.Quote(v)
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	case json.Number:
		return v.String()
	default:
		return fmt.Sprintf("%v", v)
	}
}

// fieldError names the field path and what is wrong with its value.
type fieldError struct {
	path string
	msg  string
}

func (e *fieldError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return e.path + ": " + e.msg
}

func decodePolicy(v any, index int) (Policy, error) {
	var p Policy
	m, ok := asMap(v)
	if !ok {
		return p, fmt.Errorf("policies[%d]: a policy must be a mapping, got %s", index, describe(v))
	}
	prefix := fmt.Sprintf("policies[%d]", index)
	if n, ok := m["name"].(string); ok && n != "" {
		prefix = fmt.Sprintf("policy %q", n)
	}
	fail := func(err error) (Policy, error) { return Policy{}, fmt.Errorf("%s: %w", prefix, err) }
	for _, k := range sortedKeys(m) {
		val := m[k]
		var err error
		switch k {
		case "name":
			p.Name, err = asString(val, "name")
		case "selector":
			p.Selector, err = decodeSelector(val)
		case "target":
			var s string
			s, err = asString(val, "target")
			p.Target = Target(s)
		case "duration":
			p.Duration, err = asDuration(val, "duration")
		case "silence":
			p.Silence, err = asDuration(val, "silence")
		case "lookback":
			p.Lookback, err = asDuration(val, "lookback")
			p.LookbackSet = err == nil
		case "items":
			p.Items, err = decodeItems(val)
		default:
			err = &fieldError{msg: fmt.Sprintf("unknown field %q", k)}
		}
		if err != nil {
			return fail(err)
		}
	}
	return p, nil
}

func decodeItems(v any) ([]Item, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, &fieldError{"items", "must be a list, got " + describe(v)}
	}
	items := make([]Item, len(list))
	for i, iv := range list {
		path := fmt.Sprintf("items[%d]", i)
		m, ok := asMap(iv)
		if !ok {
			return nil, &fieldError{path, "must be a mapping, got " + describe(iv)}
		}
		it := &items[i]
		for _, k := range sortedKeys(m) {
			val := m[k]
			fpath := path + "." + k
			var err error
			switch k {
			case "monitor":
				var s string
				s, err = asString(val, fpath)
				it.Monitor = Monitor(s)
			case "threshold":
				it.Threshold, err = asFloat(val, fpath)
			case "period":
				it.Period, err = asInt(val, fpath)
			case "count":
				it.Count, err = asInt(val, fpath)
			case "uri_regex":
				it.URIRegex, err = asString(val, fpath)
			case "uri_list":
				it.URIList, err = asStringList(val, fpath)
			default:
				err = &fieldError{path, fmt.Sprintf("unknown field %q", k)}
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return items, nil
}

func decodeSelector(v any) (Selector, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := asMap(v)
	if !ok {
		return nil, &fieldError{"selector", "must be a mapping of resource attribute to value, got " + describe(v)}
	}
	sel := make(Selector, len(m))
	for _, k := range sortedKeys(m) {
		mt, err := decodeMatcher(m[k], "selector["+k+"]")
		if err != nil {
			return nil, err
		}
		sel[k] = mt
	}
	return sel, nil
}

func decodeMatcher(v any, path string) (Matcher, error) {
	if s, ok := scalarText(v); ok {
		return Matcher{Exact: s}, nil
	}
	m, ok := asMap(v)
	if !ok {
		return Matcher{}, &fieldError{path, "must be a value or {regex: ...}, got " + describe(v)}
	}
	if len(m) != 1 {
		return Matcher{}, &fieldError{path, "must have exactly one of regex or exact"}
	}
	var mt Matcher
	for k, val := range m {
		s, err := asString(val, path+"."+k)
		if err != nil {
			return Matcher{}, err
		}
		switch k {
		case "regex":
			if s == "" {
				return Matcher{}, &fieldError{path + ".regex", "must not be empty"}
			}
			mt.Regex = s
		case "exact":
			mt.Exact = s
		default:
			return Matcher{}, &fieldError{path, fmt.Sprintf("unknown field %q (expected regex or exact)", k)}
		}
	}
	return mt, nil
}

// scalarText gives attribute values written unquoted (numbers, booleans)
// their text, so `pid_ns: 4026531836` selects like the string would.
func scalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	}
	return "", false
}

func asString(v any, path string) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", &fieldError{path, "must be a string, got " + describe(v)}
	}
	return s, nil
}

func asStringList(v any, path string) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, &fieldError{path, "must be a list of strings, got " + describe(v)}
	}
	out := make([]string, len(list))
	for i, e := range list {
		s, err := asString(e, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func asFloat(v any, path string) (float64, error) {
	var f float64
	switch n := v.(type) {
	case json.Number:
		var err error
		f, err = strconv.ParseFloat(n.String(), 64)
		if err != nil {
			return 0, &fieldError{path, n.String() + " is not a number"}
		}
	case float64:
		f = n
	case float32:
		f = float64(n)
	default:
		rv := reflect.ValueOf(v)
		switch {
		case rv.CanInt():
			f = float64(rv.Int())
		case rv.CanUint():
			f = float64(rv.Uint())
		default:
			return 0, &fieldError{path, describe(v) + " is not a number"}
		}
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, &fieldError{path, describe(v) + " is not a finite number"}
	}
	return f, nil
}

func asInt(v any, path string) (int, error) {
	f, err := asFloat(v, path)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || f > math.MaxInt32 || f < math.MinInt32 {
		return 0, &fieldError{path, strconv.FormatFloat(f, 'g', -1, 64) + " is not a whole number"}
	}
	return int(f), nil
}

func asDuration(v any, path string) (time.Duration, error) {
	switch d := v.(type) {
	case string:
		dur, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return 0, &fieldError{path, fmt.Sprintf("%q is not a duration (use e.g. \"30s\", \"10m\")", d)}
		}
		return dur, nil
	case time.Duration:
		return d, nil
	}
	return 0, &fieldError{path, describe(v) + " is not a duration (use a string such as \"30s\" or \"10m\")"}
}
