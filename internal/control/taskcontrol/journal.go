package taskcontrol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/contprof/contprof/internal/output/profiles"
)

// KV is what the journal needs of a Collector storage client
// (go.opentelemetry.io/collector/extension/xextension/storage.Client).
type KV interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
}

// Keys in the storage. The index lists the persisted task ids, since a
// storage client cannot list its keys.
const (
	indexKey      = "index"
	taskPrefix    = "task/"
	profilePrefix = "profile/"
	// journalDelay coalesces the changes of a burst into one write each.
	journalDelay = 200 * time.Millisecond
)

type taskRecord struct {
	Info TaskInfo `json:"info"`
	Key  string   `json:"key"`
}

type profileRecord struct {
	Profile   *profiles.Profile `json:"profile"`
	Intervals []int64           `json:"intervals"`
	Count     int               `json:"count"`
}

// journal writes the history's changes to storage in the background: task
// records when a task changes state, profiles when a report interval is
// merged in (so a crash keeps what was collected), deletions when a task
// leaves the history or its profile is evicted. A nil journal does
// nothing.
type journal struct {
	c      *Controller
	kv     KV
	logger *zap.Logger

	mu        sync.Mutex
	tasks     map[string]struct{}
	profs     map[string]struct{}
	deleted   map[string]struct{}
	persisted map[string]struct{} // ids in the index
	lastErr   string

	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once // Shutdown may close the journal more than once
	done     chan struct{}
}

func (j *journal) touch(id string, profile bool) {
	if j == nil {
		return
	}
	j.mu.Lock()
	if profile {
		j.profs[id] = struct{}{}
	} else {
		j.tasks[id] = struct{}{}
	}
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

func (j *journal) remove(id string) {
	if j == nil {
		return
	}
	j.mu.Lock()
	j.deleted[id] = struct{}{}
	delete(j.tasks, id)
	delete(j.profs, id)
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

func (j *journal) run() {
	defer close(j.done)
	for {
		select {
		case <-j.stop:
			j.flush()
			return
		case <-j.wake:
		}
		select {
		case <-j.stop:
			j.flush()
			return
		case <-time.After(journalDelay):
		}
		j.flush()
	}
}

// flush writes what changed since the last flush.
func (j *journal) flush() {
	j.mu.Lock()
	tasks, profs, deleted := j.tasks, j.profs, j.deleted
	j.tasks, j.profs, j.deleted = map[string]struct{}{}, map[string]struct{}{}, map[string]struct{}{}
	j.mu.Unlock()
	ctx := context.Background()
	var errs []error
	indexChanged := false
	for id := range tasks {
		rec, ok := j.c.record(id)
		if !ok {
			continue
		}
		data, err := json.Marshal(rec)
		if err == nil {
			err = j.kv.Set(ctx, taskPrefix+id, data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("task %s: %w", id, err))
			continue
		}
		if _, ok := j.persisted[id]; !ok {
			j.persisted[id] = struct{}{}
			indexChanged = true
		}
	}
	for id := range profs {
		p, intervals, count, ok := j.c.profiles.snapshot(id)
		if !ok {
			// Evicted to stay within profile_store_bytes: on disk too.
			if err := j.kv.Delete(ctx, profilePrefix+id); err != nil {
				errs = append(errs, fmt.Errorf("profile %s: %w", id, err))
			}
			continue
		}
		data, err := json.Marshal(profileRecord{Profile: p, Intervals: intervals, Count: count})
		if err == nil {
			err = j.kv.Set(ctx, profilePrefix+id, data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("profile %s: %w", id, err))
		}
	}
	for id := range deleted {
		for _, k := range []string{taskPrefix + id, profilePrefix + id} {
			if err := j.kv.Delete(ctx, k); err != nil {
				errs = append(errs, fmt.Errorf("deleting %s: %w", k, err))
			}
		}
		if _, ok := j.persisted[id]; ok {
			delete(j.persisted, id)
			indexChanged = true
		}
	}
	if indexChanged {
		if err := j.writeIndex(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	j.report(errors.Join(errs...))
}

func (j *journal) writeIndex(ctx context.Context) error {
	ids := make([]string, 0, len(j.persisted))
	for id := range j.persisted {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	data, _ := json.Marshal(ids)
	if err := j.kv.Set(ctx, indexKey, data); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}

// report logs a write error once per change of error.
func (j *journal) report(err error) {
	text := ""
	if err != nil {
		text = err.Error()
	}
	if text == j.lastErr {
		return
	}
	j.lastErr = text
	if err != nil {
		j.logger.Error("Cannot write the task history to storage; it is kept in memory", zap.Error(err))
	} else {
		j.logger.Info("Task history storage writes work again")
	}
}

// record is a task's persisted form.
func (c *Controller) record(id string) (taskRecord, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tasks[id]
	if !ok {
		return taskRecord{}, false
	}
	info := t.info
	info.Profile = ProfileInfo{}
	return taskRecord{Info: info, Key: t.key}, true
}

// Persist restores the history kept in kv by an earlier run and then keeps
// kv up to date with every change, until Shutdown. Restored tasks that
// were still pending or running (the collector was killed) are
// interrupted; tasks older than the history TTL are dropped, also from kv.
// Unreadable or corrupt entries are skipped and reported in the returned
// error; the controller works either way (a corrupt index starts an empty
// history). Call it before tasks are requested.
func (c *Controller) Persist(kv KV) (restored int, err error) {
	j := &journal{
		c: c, kv: kv, logger: c.cfg.Logger,
		tasks: map[string]struct{}{}, profs: map[string]struct{}{}, deleted: map[string]struct{}{},
		persisted: map[string]struct{}{},
		wake:      make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	c.profiles.mu.Lock()
	c.profiles.onDrop = func(id string) { j.touch(id, true) }
	c.profiles.mu.Unlock()
	restored, err = c.restore(j)
	c.mu.Lock()
	c.journal = j
	c.mu.Unlock()
	go j.run()
	return restored, err
}

func (c *Controller) restore(j *journal) (int, error) {
	ctx := context.Background()
	data, err := j.kv.Get(ctx, indexKey)
	if err != nil {
		return 0, fmt.Errorf("task history storage: reading the index: %w; starting with an empty history", err)
	}
	if data == nil {
		return 0, nil
	}
	var ids []string
	if err := json.Unmarshal(data, &ids); err != nil {
		// Unknown ids cannot be deleted: a fresh index replaces this one.
		j.mu.Lock()
		j.persisted = map[string]struct{}{}
		j.mu.Unlock()
		_ = j.writeIndex(ctx)
		return 0, fmt.Errorf("task history storage: the index is corrupt (%v); starting with an empty history", err)
	}
	now := c.cfg.Now()
	cutoff := now.Add(-c.cfg.HistoryTTL)
	var errs []error
	var recs []taskRecord
	for _, id := range ids {
		data, err := j.kv.Get(ctx, taskPrefix+id)
		var rec taskRecord
		if err == nil && data != nil {
			err = json.Unmarshal(data, &rec)
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("task %s: %w", id, err))
			j.deleted[id] = struct{}{}
			continue
		case data == nil || rec.Info.ID != id:
			j.deleted[id] = struct{}{}
			continue
		case rec.Info.Created.Before(cutoff):
			j.deleted[id] = struct{}{} // past the 48 h retention
			continue
		}
		recs = append(recs, rec)
	}
	sort.Slice(recs, func(a, b int) bool { return recs[a].Info.Created.Before(recs[b].Info.Created) })
	if over := len(recs) - c.cfg.HistoryMaxTasks; over > 0 {
		for _, r := range recs[:over] {
			j.deleted[r.Info.ID] = struct{}{}
		}
		recs = recs[over:]
	}
	for _, rec := range recs {
		id := rec.Info.ID
		j.persisted[id] = struct{}{}
		if data, err := j.kv.Get(ctx, profilePrefix+id); err != nil {
			errs = append(errs, fmt.Errorf("profile %s: %w", id, err))
		} else if data != nil {
			var pr profileRecord
			if err := json.Unmarshal(data, &pr); err != nil || pr.Profile == nil || len(pr.Intervals) != len(pr.Profile.Samples) {
				errs = append(errs, fmt.Errorf("profile %s: corrupt (%v); the task is kept without it", id, err))
				j.profs[id] = struct{}{} // deleted at the first flush
			} else {
				c.profiles.restore(id, rec.Info.Created, pr)
			}
		}
		if c.restoreTask(rec, now) {
			j.tasks[id] = struct{}{} // now interrupted
		}
	}
	if len(j.deleted) > 0 {
		j.wake <- struct{}{}
	}
	return len(recs), errors.Join(errs...)
}

// restoreTask puts a persisted task back in the history; it reports
// whether the task changed (it was still pending or running: the
// collector was killed, and it is now interrupted).
func (c *Controller) restoreTask(rec taskRecord, now time.Time) (changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	info := rec.Info
	if !info.State.Ended() {
		info.State, info.Error, info.Ended = StateInterrupted, interruptedText, now
		changed = true
	}
	if _, dup := c.tasks[info.ID]; dup {
		return false
	}
	ctx, cancel := context.WithCancel(c.ctx)
	cancel()
	t := &task{info: info, key: rec.Key, ctx: ctx, cancel: cancel, left: make(chan struct{})}
	close(t.left)
	c.tasks[info.ID] = t
	i, _ := slices.BinarySearchFunc(c.order, info.Created, func(t *task, at time.Time) int { return t.info.Created.Compare(at) })
	c.order = slices.Insert(c.order, i, t)
	c.recordTriggerLocked(&t.info)
	return changed
}

// restore puts a persisted profile back, one report interval at a time so
// that the per-interval view and the memory estimate are as they were.
func (s *profileStore) restore(id string, created time.Time, pr profileRecord) {
	byInterval := map[int64][]profiles.Sample{}
	var order []int64
	for i, smp := range pr.Profile.Samples {
		iv := pr.Intervals[i]
		if _, ok := byInterval[iv]; !ok {
			order = append(order, iv)
		}
		byInterval[iv] = append(byInterval[iv], smp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(id, created)
	before := e.bytes
	for _, iv := range order {
		p := *pr.Profile
		p.Samples = byInterval[iv]
		if iv != 0 {
			p.Start = time.Unix(iv, 0)
		} else {
			p.Start = time.Time{}
		}
		e.merge(&p)
	}
	if e.merged != nil {
		e.merged.Start, e.merged.End = pr.Profile.Start, pr.Profile.End
	}
	e.count = pr.Count
	s.total += e.bytes - before
	s.evictLocked(id)
}

// closeJournal writes what is pending and stops the journal.
func (c *Controller) closeJournal() {
	c.mu.Lock()
	j := c.journal
	c.mu.Unlock()
	if j == nil {
		return
	}
	j.stopOnce.Do(func() { close(j.stop) })
	<-j.done
}
