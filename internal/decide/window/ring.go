package window

// Slack is how many seconds a window keeps beyond the largest period that
// uses it. A second may be judged a little after newer data arrived (a batch
// carrying several seconds, or a lagging monitor); the slack keeps the oldest
// second of the longest period in the window until then.
const Slack = 8

// ring holds one slot per second. A slot belongs to the second it is stamped
// with; a slot stamped with another second is "no data" for the second asked
// for, so gaps and wrap-around need no clearing. Stamp and value sit side by
// side: judging touches one cache line per second.
type ring[T any] struct {
	slots  []slot[T]
	newest int64
	// judged is the newest second an item has been judged at on this ring;
	// gen changes whenever a second at or before it is written, which tells
	// the items that their running counts are stale.
	judged int64
	gen    uint64
}

type slot[T any] struct {
	sec int64
	v   T
}

func newRing[T any](n int) *ring[T] {
	return &ring[T]{slots: make([]slot[T], n)}
}

func (r *ring[T]) size() int64 { return int64(len(r.slots)) }

// slot returns the value of sec for writing, cleared if the slot held an
// older second, or nil when sec is older than the window (or not a time).
func (r *ring[T]) slot(sec int64) *T {
	n := r.size()
	if sec <= 0 || sec <= r.newest-n {
		return nil
	}
	if sec > r.newest {
		r.newest = sec
	}
	if sec <= r.judged {
		r.gen++
	}
	sl := &r.slots[sec%n]
	if sl.sec != sec {
		if sl.sec > sec {
			return nil
		}
		var zero T
		sl.sec, sl.v = sec, zero
	}
	return &sl.v
}

// get returns the value of sec when the window holds data for that second.
func (r *ring[T]) get(sec int64) (*T, bool) {
	if sec <= 0 {
		return nil, false
	}
	sl := &r.slots[sec%r.size()]
	if sl.sec != sec {
		return nil, false
	}
	return &sl.v, true
}

// resize changes the number of slots, keeping every second that still fits.
func (r *ring[T]) resize(n int) {
	if n == len(r.slots) {
		return
	}
	slots := make([]slot[T], n)
	for _, sl := range r.slots {
		if sl.sec == 0 || sl.sec <= r.newest-int64(n) {
			continue
		}
		slots[sl.sec%int64(n)] = sl
	}
	r.slots = slots
	r.gen++
}

// httpAgg is what one second of HTTP server requests adds up to.
type httpAgg struct {
	errors   float64 // requests with status >= 500
	count    float64 // all requests
	sum      float64 // seconds, over the requests whose histogram carried a sum
	sumCount float64
}

func (a *httpAgg) add(isError bool, count, sum float64, hasSum bool) {
	if isError {
		a.errors += count
	}
	a.count += count
	if hasSum {
		a.sum += sum
		a.sumCount += count
	}
}

// errorRate is the percent of requests with status >= 500.
func (a *httpAgg) errorRate() (float64, bool) {
	if a.count <= 0 {
		return 0, false
	}
	return 100 * a.errors / a.count, true
}

// avgMillis is the mean response time in milliseconds.
func (a *httpAgg) avgMillis() (float64, bool) {
	if a.sumCount <= 0 {
		return 0, false
	}
	return a.sum / a.sumCount * 1000, true
}
