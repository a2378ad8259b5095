package policy

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// Limits of the policy model (docs/design.md, "Policy model").
const (
	MinDuration = time.Second
	MaxDuration = time.Hour
	MinSilence  = time.Second
	MaxSilence  = 24 * time.Hour
	MaxPeriod   = 3600
)

var nameRE = regexp.MustCompile(`^[a-z0-9._-]{1,64}$`)

// Targets lists the valid targets.
var Targets = []Target{TargetOnCPU, TargetOffCPU, TargetNetwork}

// Monitors lists the valid monitors.
var Monitors = []Monitor{
	MonitorProcessCPU, MonitorProcessThreadCount, MonitorSystemLoad,
	MonitorHTTPErrorRate, MonitorHTTPAvgResponseTime,
}

// Valid reports whether t is a known target.
func (t Target) Valid() bool {
	for _, v := range Targets {
		if v == t {
			return true
		}
	}
	return false
}

// Valid reports whether m is a known monitor.
func (m Monitor) Valid() bool {
	for _, v := range Monitors {
		if v == m {
			return true
		}
	}
	return false
}

// IsPercent reports whether the monitor's threshold is a percentage in (0,100].
func (m Monitor) IsPercent() bool {
	return m == MonitorProcessCPU || m == MonitorHTTPErrorRate
}

// Validate checks policies, fills in the default duration and silence, and
// compiles every regex in place, so that validated policies can be matched
// from many goroutines without further writes. Every problem is reported
// (joined), each naming the policy, the field and the value.
func Validate(policies []Policy) error {
	var errs []error
	seen := make(map[string]int, len(policies))
	for i := range policies {
		p := &policies[i]
		prefix := fmt.Sprintf("policy %q", p.Name)
		if p.Name == "" {
			prefix = fmt.Sprintf("policies[%d]", i)
		}
		for _, err := range p.validate() {
			errs = append(errs, fmt.Errorf("%s: %w", prefix, err))
		}
		if p.Name != "" {
			if first, dup := seen[p.Name]; dup {
				errs = append(errs, fmt.Errorf("%s: name: %q is already used by policies[%d]", prefix, p.Name, first))
			} else {
				seen[p.Name] = i
			}
		}
	}
	return errors.Join(errs...)
}

// fieldErrors collects a validation's errors, each naming its field.
type fieldErrors []error

func (e *fieldErrors) add(path, format string, args ...any) {
	*e = append(*e, &fieldError{path, fmt.Sprintf(format, args...)})
}

func (p *Policy) validate() []error {
	var errs fieldErrors
	add := errs.add
	switch {
	case p.Name == "":
		add("name", "is required")
	case !nameRE.MatchString(p.Name):
		add("name", "%q must match [a-z0-9._-]{1,64}", p.Name)
	}

	errs = append(errs, p.Selector.validate()...)

	switch {
	case p.Target == "":
		add("target", "is required (one of on_cpu, off_cpu, network)")
	case !p.Target.Valid():
		add("target", "%q is not one of on_cpu, off_cpu, network", p.Target)
	}

	if p.Duration == 0 {
		p.Duration = DefaultDuration
	}
	if p.Duration < MinDuration || p.Duration > MaxDuration {
		add("duration", "%s is out of range 1s..1h", p.Duration)
	}
	if p.Silence == 0 {
		p.Silence = DefaultSilence
	}
	if p.Silence < MinSilence || p.Silence > MaxSilence {
		add("silence", "%s is out of range 1s..24h", p.Silence)
	}

	if !p.LookbackSet {
		p.Lookback, p.LookbackSet = 0, true
		if p.Target == TargetOnCPU {
			p.Lookback = DefaultLookback
		}
	}
	switch {
	case p.Lookback < 0 || p.Lookback > MaxLookback:
		add("lookback", "%s is out of range 0..%s", p.Lookback, MaxLookback)
	case p.Lookback > 0 && p.Lookback < time.Second:
		add("lookback", "%s is shorter than 1s (use 0 for off)", p.Lookback)
	case p.Lookback > 0 && p.Target != TargetOnCPU && p.Target != TargetOffCPU:
		// off_cpu opts in (0 by default: its record is an always-on
		// sched_switch hook that every switch of the host pays); network
		// has no record.
		add("lookback", "%s is set on target %s; lookback is recorded for on_cpu and off_cpu only", p.Lookback, p.Target)
	}

	if len(p.Items) == 0 {
		add("items", "at least one item is required")
	}
	for i := range p.Items {
		for _, err := range p.Items[i].validate() {
			errs = append(errs, fmt.Errorf("items[%d].%w", i, err))
		}
	}
	return errs
}

// Compile checks a selector on its own (as the API's manual task requests
// use one) and compiles its regexes in place.
func (s Selector) Compile() error {
	return errors.Join(s.validate()...)
}

func (s Selector) validate() []error {
	var errs fieldErrors
	add := errs.add
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m := s[k]
		path := "selector[" + k + "]"
		if k == "" {
			add("selector", "attribute name must not be empty")
			continue
		}
		if m.Regex != "" && m.Exact != "" {
			add(path, "exact %q and regex %q are mutually exclusive", m.Exact, m.Regex)
			continue
		}
		// Already compiled (a re-validated set): no write, so a live set can
		// be validated again while others match against it.
		if m.Regex != "" && (m.re == nil || m.re.String() != m.Regex) {
			re, err := regexp.Compile(m.Regex)
			if err != nil {
				add(path+".regex", "%q is not a valid RE2 regex: %v", m.Regex, err)
				continue
			}
			m.re = re
			s[k] = m
		}
	}
	return errs
}

func (it *Item) validate() []error {
	var errs fieldErrors
	add := errs.add
	switch {
	case it.Monitor == "":
		add("monitor", "is required (one of process_cpu, process_thread_count, system_load, http_error_rate, http_avg_response_time)")
	case !it.Monitor.Valid():
		add("monitor", "%q is not one of process_cpu, process_thread_count, system_load, http_error_rate, http_avg_response_time", it.Monitor)
	}

	th := strconv.FormatFloat(it.Threshold, 'g', -1, 64)
	switch {
	case math.IsNaN(it.Threshold) || math.IsInf(it.Threshold, 0):
		add("threshold", "%s is not a finite number", th)
	case it.Monitor.IsPercent() && (it.Threshold <= 0 || it.Threshold > 100):
		add("threshold", "%s is out of range (0,100] for %s (a percentage)", th, it.Monitor)
	case it.Threshold <= 0:
		add("threshold", "%s must be greater than 0", th)
	}

	periodOK := it.Period >= 1 && it.Period <= MaxPeriod
	if !periodOK {
		add("period", "%d is out of range 1..%d", it.Period, MaxPeriod)
	}
	switch {
	case it.Count < 1:
		add("count", "%d must be at least 1", it.Count)
	case periodOK && it.Count > it.Period:
		add("count", "%d is greater than period %d", it.Count, it.Period)
	}

	if it.HasURIFilter() && it.Monitor.Valid() && !it.Monitor.IsHTTP() {
		add(uriField(it), "is set on monitor %s; URI filters apply only to http_error_rate and http_avg_response_time", it.Monitor)
	}
	if it.URIRegex != "" && len(it.URIList) > 0 {
		add("uri_regex", "%q and uri_list are mutually exclusive; use one", it.URIRegex)
	}
	if it.URIRegex != "" && (it.uriRe == nil || it.uriRe.String() != it.URIRegex) {
		re, err := regexp.Compile(it.URIRegex)
		if err != nil {
			add("uri_regex", "%q is not a valid RE2 regex: %v", it.URIRegex, err)
		} else {
			it.uriRe = re
		}
	}
	for i, u := range it.URIList {
		if u == "" {
			add(fmt.Sprintf("uri_list[%d]", i), "must not be empty")
		}
	}
	return errs
}

func uriField(it *Item) string {
	if it.URIRegex != "" {
		return "uri_regex"
	}
	return "uri_list"
}
