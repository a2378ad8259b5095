package history

import (
	"math"
	"sort"
)

// series holds one float32 per second for the last n seconds (n is passed
// in by the owner, so that the thousands of series of a store do not each
// keep it); NaN is "no data", and seconds skipped when newest advances are
// cleared.
//
// Most processes are idle: their CPU series is zero second after second
// and their thread count does not move. So a series is kept as change
// points: one (second, value) per second whose value differs from the
// previous second's, 8 bytes each (twice that at most in slice capacity),
// allocated on first write. A constant series costs one point whatever
// the span. When the points could take more room than one float32 per
// second (a series changing in more than a quarter of its seconds), the
// series switches to a dense ring of n float32 values, and back to points
// once it has calmed down (fewer than n/8 changes over a span): a series
// never costs much more than the ring it replaces (n*4 bytes plus its
// header), and an idle process's a few bytes.
type series struct {
	newest int64 // last second written; 0 before the first write
	// base is the second point offsets count from (the first second
	// written); offsets are 32 bits to keep a point at 8 bytes.
	base int64
	// pts are the change points, ascending by second: pts[i].v holds from
	// pts[i].at until the next point's second, the last one until newest.
	// Seconds before the first point have no data. Only the last point
	// that starts at or before the oldest kept second is kept of the
	// points that start before it.
	pts []point
	// dense, when not nil, replaces pts: the value of second s is
	// dense[s%n].
	dense []float32
}

type point struct {
	at uint32 // second - base
	v  float32
}

var nan32 = float32(math.NaN())

// same is value identity, NaN included (NaN is "no data", equal to itself
// here).
func same(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }

// maxOffset bounds a point's offset from base; a series running longer
// (136 years of seconds, or a clock jump) starts again from empty.
const maxOffset = math.MaxUint32

// set records v for second sec. Seconds older than the kept span are
// ignored.
func (s *series) set(n, sec int64, v float32) {
	if sec <= 0 || s.newest != 0 && sec <= s.newest-n {
		return
	}
	if s.newest != 0 && sec-s.base > maxOffset {
		*s = series{}
	}
	if s.newest == 0 {
		if same(v, nan32) {
			return // nothing to keep
		}
		s.base, s.newest = sec, sec
		s.pts = append(s.pts[:0], point{0, v})
		return
	}
	if s.dense != nil {
		s.setDense(n, sec, v)
		return
	}
	if sec > s.newest {
		s.appendAt(n, sec, v)
	} else {
		s.splice(sec, v)
	}
	// Points may take up to twice their count in capacity: at n/4 points
	// they cost as much as the ring.
	if int64(len(s.pts)) > n/4 {
		s.toDense(n)
	}
}

// add adds v to second sec, a second without data counting as zero.
func (s *series) add(n, sec int64, v float32) {
	old, ok := s.get(n, sec)
	if !ok {
		old = 0
	}
	s.set(n, sec, float32(old)+v)
}

// appendAt writes a second after newest: the seconds in between have no
// data.
func (s *series) appendAt(n, sec int64, v float32) {
	last := nan32
	if len(s.pts) > 0 {
		last = s.pts[len(s.pts)-1].v
	}
	if sec > s.newest+1 && !same(last, nan32) {
		s.pts = append(s.pts, point{uint32(s.newest + 1 - s.base), nan32})
		last = nan32
	}
	if !same(last, v) {
		s.pts = append(s.pts, point{uint32(sec - s.base), v})
	}
	s.newest = sec
	s.trim(n)
}

// trim drops the points that ended before the oldest kept second; when
// the dropped part is most of the backing array, the points move to a
// new one so the old can be freed.
func (s *series) trim(n int64) {
	oldest := s.newest - n + 1
	drop := 0
	for drop+1 < len(s.pts) && s.base+int64(s.pts[drop+1].at) <= oldest {
		drop++
	}
	if drop < len(s.pts) && same(s.pts[drop].v, nan32) {
		drop++ // no data before the first point anyway
	}
	if drop == 0 {
		return
	}
	rest := s.pts[drop:]
	if len(rest) <= cap(s.pts)/4 {
		rest = append(make([]point, 0, 2*len(rest)), rest...)
	}
	s.pts = rest
}

// splice writes a second at or before newest, splitting the run that holds
// it.
func (s *series) splice(sec int64, v float32) {
	if sec < s.base { // a second before the first one written
		d := uint32(s.base - sec)
		for i := range s.pts {
			s.pts[i].at += d
		}
		s.base = sec
	}
	off := uint32(sec - s.base)
	// i: first point after sec; the run holding sec is i-1 (none: no data).
	i := sort.Search(len(s.pts), func(j int) bool { return s.pts[j].at > off })
	prev := nan32
	if i > 0 {
		prev = s.pts[i-1].v
	}
	if same(prev, v) {
		return
	}
	// The second after sec keeps the old value unless a point starts there
	// or sec is the newest second.
	if sec < s.newest && (i == len(s.pts) || s.pts[i].at != off+1) {
		s.pts = insertPoint(s.pts, i, point{off + 1, prev})
	}
	if i > 0 && s.pts[i-1].at == off {
		s.pts[i-1].v = v
		i--
	} else {
		s.pts = insertPoint(s.pts, i, point{off, v})
	}
	// Merge with the neighbours when the new value continues a run.
	if i+1 < len(s.pts) && same(s.pts[i+1].v, v) {
		s.pts = append(s.pts[:i+1], s.pts[i+2:]...)
	}
	if i > 0 && same(s.pts[i-1].v, v) || i == 0 && same(v, nan32) {
		s.pts = append(s.pts[:i], s.pts[i+1:]...)
	}
}

func insertPoint(pts []point, i int, p point) []point {
	pts = append(pts, point{})
	copy(pts[i+1:], pts[i:])
	pts[i] = p
	return pts
}

// toDense moves the kept seconds into a ring of n values.
func (s *series) toDense(n int64) {
	d := make([]float32, n)
	for sec := s.newest - n + 1; sec <= s.newest; sec++ {
		v, ok := s.get(n, sec)
		if !ok {
			v = math.NaN()
		}
		d[mod(sec, n)] = float32(v)
	}
	s.dense, s.pts = d, nil
}

func (s *series) setDense(n, sec int64, v float32) {
	if sec > s.newest {
		for x := max(s.newest+1, sec-n+1); x <= sec; x++ {
			s.dense[mod(x, n)] = nan32
			// Once per span, see whether the points are small again.
			if mod(x, n) == 0 && s.changes(n) < n/8 {
				s.toPoints(n, x)
				s.set(n, sec, v)
				return
			}
		}
		s.newest = sec
	}
	s.dense[mod(sec, n)] = v
}

// changes counts the seconds whose value differs from the previous one's
// over the kept span.
func (s *series) changes(n int64) int64 {
	c := int64(0)
	prev := s.dense[mod(s.newest-n+1, n)]
	for x := s.newest - n + 2; x <= s.newest; x++ {
		v := s.dense[mod(x, n)]
		if !same(v, prev) {
			c++
		}
		prev = v
	}
	return c
}

// toPoints moves a dense ring back to points, with newest moved to upTo:
// the seconds from newest+1 to upTo (already cleared) have no data.
func (s *series) toPoints(n, upTo int64) {
	d := s.dense
	oldest := upTo - n + 1
	s.base = oldest
	s.pts = nil
	for x := oldest; x <= upTo; x++ {
		v := d[mod(x, n)]
		if x > s.newest {
			v = nan32
		}
		if len(s.pts) == 0 && same(v, nan32) {
			continue
		}
		if len(s.pts) == 0 || !same(s.pts[len(s.pts)-1].v, v) {
			s.pts = append(s.pts, point{uint32(x - s.base), v})
		}
	}
	s.dense = nil
	s.newest = upTo
	if len(s.pts) == 0 { // nothing left: start again from empty
		*s = series{}
	}
}

// get is the value of second sec, false when it has none or is not kept.
func (s *series) get(n, sec int64) (float64, bool) {
	if s == nil || s.newest == 0 || sec > s.newest || sec <= s.newest-n || sec <= 0 {
		return 0, false
	}
	var v float32
	if s.dense != nil {
		v = s.dense[mod(sec, n)]
	} else {
		if sec < s.base {
			return 0, false
		}
		off := uint32(sec - s.base)
		i := sort.Search(len(s.pts), func(j int) bool { return s.pts[j].at > off })
		if i == 0 {
			return 0, false
		}
		v = s.pts[i-1].v
	}
	if math.IsNaN(float64(v)) {
		return 0, false
	}
	return float64(v), true
}

// bytes is the memory the series' values take (its header excluded).
func (s *series) bytes() int {
	return 8*cap(s.pts) + 4*cap(s.dense)
}

// mod is x modulo n in [0, n), for seconds before 1 too.
func mod(x, n int64) int64 { return (x%n + n) % n }
