// Package taskcontrol decides which profiling tasks run: it applies the
// silence (cooldown) per target and process or service instance, the
// concurrency limit, and one-task-per-target-and-process; it dispatches
// accepted tasks to a registered executor, tracks their states, keeps 48
// hours of history and the tasks' merged profiles within a memory bound.
//
// Admission is synchronous and cheap; the start is not: an accepted task
// is pending until its executor reports Started (running) or a start
// failure (failed, holding no silence). See docs/design.md, "Tasks".
package taskcontrol

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/dispatch"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/output/profiles"
)

// State is a task's state.
type State string

const (
	StatePending   State = "pending"
	StateRunning   State = "running"
	StateFinished  State = "finished"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
	// StateInterrupted is a task that was pending or running when the
	// collector stopped; its profile holds what it collected until then.
	StateInterrupted State = "interrupted"
)

// interruptedText is the error text of an interrupted task.
const interruptedText = "the collector stopped while the task ran; its profile holds what was collected until then"

// Ended reports whether the state is final.
func (s State) Ended() bool {
	return s == StateFinished || s == StateFailed || s == StateCancelled || s == StateInterrupted
}

// Defaults of Config.
const (
	DefaultMaxConcurrentTasks = 4
	DefaultHistoryMaxTasks    = 1000
	DefaultHistoryTTL         = 48 * time.Hour
	DefaultProfileStoreBytes  = 64 << 20
	DefaultFinishGrace        = time.Minute
)

// maxTriggersPerProcess bounds the per-process trigger times kept for the
// summary; silences keep real policies far below it.
const maxTriggersPerProcess = 10000

// Config of a Controller; zero fields take the defaults.
type Config struct {
	MaxConcurrentTasks int
	HistoryMaxTasks    int
	HistoryTTL         time.Duration
	// ProfileStoreBytes bounds the stored profiles; negative keeps none.
	ProfileStoreBytes int64
	// FinishGrace is how long past its duration a running task may take
	// to report its end before it is failed and its context cancelled; and
	// how long a task may stay pending before its start is failed.
	FinishGrace time.Duration
	// Now is the clock; tests inject one.
	Now    func() time.Time
	Logger *zap.Logger
}

func (c *Config) setDefaults() {
	if c.MaxConcurrentTasks <= 0 {
		c.MaxConcurrentTasks = DefaultMaxConcurrentTasks
	}
	if c.HistoryMaxTasks <= 0 {
		c.HistoryMaxTasks = DefaultHistoryMaxTasks
	}
	if c.HistoryTTL <= 0 {
		c.HistoryTTL = DefaultHistoryTTL
	}
	if c.ProfileStoreBytes == 0 {
		c.ProfileStoreBytes = DefaultProfileStoreBytes
	}
	if c.FinishGrace <= 0 {
		c.FinishGrace = DefaultFinishGrace
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// TaskInfo is a snapshot of one task.
type TaskInfo struct {
	ID        string
	Policy    string
	Target    policy.Target
	Duration  time.Duration
	Silence   time.Duration
	Processes []control.Process
	Causes    []control.Cause
	Manual    bool
	State     State
	Created   time.Time
	Started   time.Time
	Ended     time.Time
	Error     string
	// Profile describes the stored merged profile, if any.
	Profile ProfileInfo
}

// ProfileInfo describes a task's stored profile.
type ProfileInfo struct {
	// Bytes is the estimated memory the stored profile takes; 0 when there
	// is none.
	Bytes int
	// Profiles is how many profiles the executor handed over.
	Profiles int
	// Dropped is set when the profile was evicted to respect the memory
	// bound.
	Dropped bool
	// Error is set when a handed over profile could not be merged.
	Error string
}

// ProcessSummary is one process's tasks for one policy.
type ProcessSummary struct {
	Process control.Process
	// Tasks is the number of tasks in the history window.
	Tasks       int
	LastTrigger time.Time
}

type task struct {
	info     TaskInfo
	key      string // target + dimension (process or service instance)
	ctx      context.Context
	cancel   context.CancelFunc
	executor *executorEntry
	// left is closed when the task leaves pending (started or ended).
	left chan struct{}
}

type executorEntry struct{ e dispatch.Executor }

type triggers struct {
	process control.Process
	times   []time.Time // ascending
}

// Controller is safe for concurrent use.
type Controller struct {
	cfg Config

	ctx       context.Context
	cancelAll context.CancelFunc
	mu        sync.Mutex
	executors []*executorEntry
	tasks     map[string]*task
	order     []*task // by creation, oldest first
	active    map[string]*task
	nActive   int
	silence   map[string]silenceEntry
	summary   map[string]map[string]*triggers // policy -> process key
	profiles  *profileStore
	flows     flowStore
	shutdown  bool
	// journal persists the history when storage is configured (nil: in
	// memory only).
	journal *journal

	summaryPruned time.Time
	silencePruned time.Time
}

type silenceEntry struct {
	until  time.Time
	taskID string
}

// New returns a controller.
func New(cfg Config) *Controller {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Controller{
		cfg: cfg, ctx: ctx, cancelAll: cancel,
		tasks:    make(map[string]*task),
		active:   make(map[string]*task),
		silence:  make(map[string]silenceEntry),
		summary:  make(map[string]map[string]*triggers),
		profiles: newProfileStore(cfg.ProfileStoreBytes),
	}
}

// RegisterExecutor makes e available for its targets. Unregistering
// cancels the tasks it still runs.
func (c *Controller) RegisterExecutor(e dispatch.Executor) (unregister func()) {
	entry := &executorEntry{e: e}
	c.mu.Lock()
	c.executors = append(c.executors, entry)
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.executors = slices.DeleteFunc(c.executors, func(x *executorEntry) bool { return x == entry })
			for _, t := range c.order {
				if t.executor == entry && !t.info.State.Ended() {
					// Executors unregister when the collector stops; the
					// final profile still arrives after this.
					c.endLocked(t, StateInterrupted, interruptedText)
				}
			}
		})
	}
}

func refused(format string, args ...any) *control.RefusedError {
	return &control.RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// dimension returns the silence/exclusivity key of a request: the process
// for on_cpu/off_cpu, the service instance for network.
func dimension(req *control.TaskRequest) (string, string, error) {
	if !req.Target.Valid() {
		return "", "", fmt.Errorf("target: %q is not one of on_cpu, off_cpu, network", req.Target)
	}
	if len(req.Processes) == 0 {
		return "", "", errors.New("processes: at least one process is required")
	}
	if req.Target != policy.TargetNetwork {
		if len(req.Processes) != 1 {
			return "", "", fmt.Errorf("processes: a %s task covers exactly one process, got %d", req.Target, len(req.Processes))
		}
		p := req.Processes[0]
		if p.PID <= 0 {
			return "", "", fmt.Errorf("processes[0].pid: %d is not a process id", p.PID)
		}
		return string(req.Target) + "|" + p.Key(), "process " + p.Key(), nil
	}
	inst := req.Processes[0].InstanceKey()
	for i, p := range req.Processes[1:] {
		if k := p.InstanceKey(); k != inst {
			return "", "", fmt.Errorf("processes[%d]: service instance %q differs from %q; a network task covers one service instance", i+1, k, inst)
		}
	}
	return string(req.Target) + "|" + inst, "service instance " + inst, nil
}

// RequestTask accepts a task and dispatches it to an executor, or refuses
// it with a *control.RefusedError saying why. Malformed requests get a
// plain error naming the field.
func (c *Controller) RequestTask(req control.TaskRequest) (string, error) {
	key, what, err := dimension(&req)
	if err != nil {
		return "", err
	}
	switch {
	case req.Duration == 0:
		req.Duration = policy.DefaultDuration
	case req.Duration < policy.MinDuration || req.Duration > policy.MaxDuration:
		return "", fmt.Errorf("duration: %s is out of range 1s..1h", req.Duration)
	}
	if req.Silence < 0 || req.Silence > policy.MaxSilence {
		return "", fmt.Errorf("silence: %s is out of range 0..24h", req.Silence)
	}

	t, exec, err := c.admit(&req, key, what)
	if err != nil {
		return "", err
	}
	ct := control.Task{
		ID: t.info.ID, Policy: req.Policy, Target: req.Target, Duration: req.Duration,
		Process: t.info.Processes, Causes: t.info.Causes, Created: t.info.Created,
	}

	// Outside the lock: the executor may call back (Started, Done) from
	// its own goroutines before StartTask returns. StartTask only queues
	// the task, so the caller (the metrics pipeline) never waits on it.
	if err := exec.e.StartTask(t.ctx, ct, &sink{c: c, t: t}); err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		// A task that did not start holds no silence.
		c.endLocked(t, StateFailed, "start: "+err.Error())
		return "", fmt.Errorf("task %s did not start: %w", t.info.ID, err)
	}
	return t.info.ID, nil
}

// WaitStarted waits until the task is no longer pending or ctx is done,
// and returns its state then (the API answers a manual request with the
// started task, or with why it failed to start).
func (c *Controller) WaitStarted(ctx context.Context, id string) (TaskInfo, error) {
	c.mu.Lock()
	t, ok := c.tasks[id]
	c.mu.Unlock()
	if !ok {
		return TaskInfo{}, ErrNotFound
	}
	select {
	case <-t.left:
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.infoLocked(t), nil
}

// startedLocked moves a pending task to running; its silence counts from
// now.
func (c *Controller) startedLocked(t *task) {
	if t.info.State != StatePending {
		return
	}
	t.info.State = StateRunning
	t.info.Started = c.cfg.Now()
	close(t.left)
	c.journal.touch(t.info.ID, false)
	if t.info.Silence > 0 {
		c.silence[t.key] = silenceEntry{until: t.info.Started.Add(t.info.Silence), taskID: t.info.ID}
	}
}

// admit applies the refusal rules and, when none applies, records a
// pending task that holds its slot and its target+dimension key.
func (c *Controller) admit(req *control.TaskRequest, key, what string) (*task, *executorEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	c.maintainLocked(now)
	if c.shutdown {
		return nil, nil, refused("the controller is shut down")
	}
	var exec *executorEntry
	for _, e := range c.executors {
		if slices.Contains(e.e.Targets(), req.Target) {
			exec = e
			break
		}
	}
	if exec == nil {
		return nil, nil, refused("no executor registered for target %s", req.Target)
	}
	if a, ok := exec.e.(control.Admitter); ok {
		if err := a.Admit(req.Target, req.Processes); err != nil {
			return nil, nil, refused("%s", err.Error())
		}
	}
	if t := c.active[key]; t != nil {
		return nil, nil, refused("task %s (%s) is already %s for %s", t.info.ID, req.Target, t.info.State, what)
	}
	if s, ok := c.silence[key]; ok && now.Before(s.until) && !req.Manual {
		return nil, nil, &control.RefusedError{
			Reason: fmt.Sprintf("silenced until %s: task %s (%s) started for %s", s.until.UTC().Format(time.RFC3339), s.taskID, req.Target, what),
			Until:  s.until,
		}
	}
	if c.nActive >= c.cfg.MaxConcurrentTasks {
		return nil, nil, refused("concurrency limit reached: %d tasks pending or running (max_concurrent_tasks)", c.nActive)
	}

	ctx, cancel := context.WithCancel(c.ctx)
	t := &task{
		key: key, ctx: ctx, cancel: cancel, executor: exec, left: make(chan struct{}),
		info: TaskInfo{
			ID: newID(), Policy: req.Policy, Target: req.Target, Duration: req.Duration, Silence: req.Silence,
			Processes: slices.Clone(req.Processes), Causes: slices.Clone(req.Causes), Manual: req.Manual,
			State: StatePending, Created: now,
		},
	}
	c.tasks[t.info.ID] = t
	c.journal.touch(t.info.ID, false)
	c.order = append(c.order, t)
	c.active[key] = t
	c.nActive++
	c.recordTriggerLocked(&t.info)
	c.pruneLocked(now)
	return t, exec, nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// endLocked moves an unfinished task to a final state.
func (c *Controller) endLocked(t *task, s State, errText string) {
	if t.info.State.Ended() {
		return
	}
	if t.info.State == StatePending {
		close(t.left)
	}
	t.info.State = s
	t.info.Error = errText
	t.info.Ended = c.cfg.Now()
	t.cancel()
	c.journal.touch(t.info.ID, false)
	if c.active[t.key] == t {
		delete(c.active, t.key)
	}
	c.nActive--
}

// maintainLocked fails overdue tasks and forgets expired silences.
func (c *Controller) maintainLocked(now time.Time) {
	for _, t := range c.active {
		switch {
		case t.info.State == StateRunning && now.After(t.info.Started.Add(t.info.Duration+c.cfg.FinishGrace)):
			c.endLocked(t, StateFailed, fmt.Sprintf("executor did not end the task within its duration %s + %s", t.info.Duration, c.cfg.FinishGrace))
		case t.info.State == StatePending && now.After(t.info.Created.Add(c.cfg.FinishGrace)):
			c.endLocked(t, StateFailed, fmt.Sprintf("start: executor did not start the task within %s", c.cfg.FinishGrace))
		}
	}
	// Expired silences are ignored by admit; forgetting them is only for
	// memory, so it need not cost every request a pass over all of them.
	if now.Sub(c.silencePruned) >= silencePruneEvery {
		c.silencePruned = now
		for k, s := range c.silence {
			if !now.Before(s.until) {
				delete(c.silence, k)
			}
		}
	}
}

const silencePruneEvery = 10 * time.Second

// pruneLocked drops ended tasks older than the history TTL, then the
// oldest ended tasks beyond the count bound, with their profiles. Over the
// bound it prunes a tenth more, so a full history costs one pass per many
// tasks rather than one per task.
func (c *Controller) pruneLocked(now time.Time) {
	cutoff := now.Add(-c.cfg.HistoryTTL)
	if now.Sub(c.summaryPruned) >= summaryPruneEvery {
		c.pruneSummaryLocked(cutoff)
		c.summaryPruned = now
	}
	max := c.cfg.HistoryMaxTasks
	if len(c.order) <= max && (len(c.order) == 0 || !c.order[0].info.Created.Before(cutoff)) {
		return
	}
	excess := 0
	if len(c.order) > max {
		excess = len(c.order) - max + max/10
	}
	keep := c.order[:0]
	for _, t := range c.order {
		if t.info.State.Ended() && (t.info.Created.Before(cutoff) || excess > 0) {
			excess--
			delete(c.tasks, t.info.ID)
			c.journal.remove(t.info.ID)
			c.profiles.remove(t.info.ID)
			continue
		}
		keep = append(keep, t)
	}
	clear(c.order[len(keep):])
	c.order = keep
}

// summaryPruneEvery throttles the summary clean-up; readers filter by time
// themselves, so this only bounds memory.
const summaryPruneEvery = time.Minute

func (c *Controller) pruneSummaryLocked(cutoff time.Time) {
	for pol, procs := range c.summary {
		for k, tr := range procs {
			if i := tr.firstSince(cutoff); i > 0 {
				tr.times = slices.Delete(tr.times, 0, i)
			}
			if len(tr.times) == 0 {
				delete(procs, k)
			}
		}
		if len(procs) == 0 {
			delete(c.summary, pol)
		}
	}
}

func (tr *triggers) firstSince(cutoff time.Time) int {
	return sort.Search(len(tr.times), func(i int) bool { return !tr.times[i].Before(cutoff) })
}

func (c *Controller) recordTriggerLocked(ti *TaskInfo) {
	procs := c.summary[ti.Policy]
	if procs == nil {
		procs = make(map[string]*triggers)
		c.summary[ti.Policy] = procs
	}
	for _, p := range ti.Processes {
		tr := procs[p.Key()]
		if tr == nil {
			tr = &triggers{}
			procs[p.Key()] = tr
		}
		tr.process = p
		tr.times = append(tr.times, ti.Created)
		if len(tr.times) > maxTriggersPerProcess {
			tr.times = slices.Delete(tr.times, 0, len(tr.times)-maxTriggersPerProcess)
		}
	}
}

// Cancel ends a pending or running task. Its silence stays: it did start.
func (c *Controller) Cancel(id string) (TaskInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tasks[id]
	if !ok {
		return TaskInfo{}, ErrNotFound
	}
	if t.info.State.Ended() {
		return c.infoLocked(t), fmt.Errorf("task %s already ended (%s)", id, t.info.State)
	}
	c.endLocked(t, StateCancelled, "cancelled")
	return c.infoLocked(t), nil
}

// ErrNotFound is returned for an unknown (or expired) task id.
var ErrNotFound = errors.New("no such task")

func (c *Controller) infoLocked(t *task) TaskInfo {
	ti := t.info // the slices inside are never modified after creation
	ti.Profile = c.profiles.info(t.info.ID)
	return ti
}

// Task returns one task.
func (c *Controller) Task(id string) (TaskInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.maintainLocked(c.cfg.Now())
	t, ok := c.tasks[id]
	if !ok {
		return TaskInfo{}, false
	}
	return c.infoLocked(t), true
}

// Tasks returns all tasks in the history, newest first.
func (c *Controller) Tasks() []TaskInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	c.maintainLocked(now)
	c.pruneLocked(now)
	out := make([]TaskInfo, 0, len(c.order))
	c.profiles.mu.Lock()
	defer c.profiles.mu.Unlock()
	for i := len(c.order) - 1; i >= 0; i-- {
		ti := c.order[i].info
		ti.Profile = c.profiles.infoLocked(ti.ID)
		out = append(out, ti)
	}
	return out
}

// Active is the number of pending or running tasks.
func (c *Controller) Active() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nActive
}

// Summary returns, per policy, the processes that had tasks in the
// history window with their task count and last trigger, most tasks first.
// Manual tasks are under the policy name "".
func (c *Controller) Summary() map[string][]ProcessSummary {
	c.mu.Lock()
	defer c.mu.Unlock()
	cutoff := c.cfg.Now().Add(-c.cfg.HistoryTTL)
	out := make(map[string][]ProcessSummary, len(c.summary))
	for pol, procs := range c.summary {
		list := make([]ProcessSummary, 0, len(procs))
		for _, tr := range procs {
			if n := len(tr.times) - tr.firstSince(cutoff); n > 0 {
				list = append(list, ProcessSummary{Process: tr.process, Tasks: n, LastTrigger: tr.times[len(tr.times)-1]})
			}
		}
		if len(list) == 0 {
			continue
		}
		sort.Slice(list, func(i, j int) bool {
			if list[i].Tasks != list[j].Tasks {
				return list[i].Tasks > list[j].Tasks
			}
			if !list[i].LastTrigger.Equal(list[j].LastTrigger) {
				return list[i].LastTrigger.After(list[j].LastTrigger)
			}
			return list[i].Process.Key() < list[j].Process.Key()
		})
		out[pol] = list
	}
	return out
}

// ProcessStats returns a process's task count over all policies in the
// history window and its last trigger time.
func (c *Controller) ProcessStats(processKey string) (tasks int, last time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cutoff := c.cfg.Now().Add(-c.cfg.HistoryTTL)
	for _, procs := range c.summary {
		tr := procs[processKey]
		if tr == nil {
			continue
		}
		n := len(tr.times) - tr.firstSince(cutoff)
		if n == 0 {
			continue
		}
		tasks += n
		if l := tr.times[len(tr.times)-1]; l.After(last) {
			last = l
		}
	}
	return tasks, last
}

// Profile returns the task's merged profile as gzip pprof bytes, converted
// now from the stored neutral form; false when there is none.
func (c *Controller) Profile(id string) ([]byte, bool, error) {
	return c.profiles.pprof(id)
}

// NeutralProfile returns the task's merged profile in the neutral form,
// whose frames keep their frame type, and the report interval (unix
// seconds, 0 unknown) of each sample: what the web UI's flame graph draws.
func (c *Controller) NeutralProfile(id string) (*profiles.Profile, []int64, bool) {
	return c.profiles.neutral(id)
}

// Shutdown cancels every unfinished task; later requests are refused.
func (c *Controller) Shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shutdown = true
	for _, t := range c.order {
		c.endLocked(t, StateInterrupted, interruptedText)
	}
	c.cancelAll()
	c.mu.Unlock()
	// The journal writes the interrupted states (and the profiles the
	// executors handed over while stopping) before the storage closes.
	c.closeJournal()
	c.mu.Lock()
}

// sink is what an executor reports through.
type sink struct {
	c    *Controller
	t    *task
	once sync.Once
}

func (s *sink) Started() {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.startedLocked(s.t)
}

func (s *sink) AddProfile(p *profiles.Profile) {
	if p == nil {
		return
	}
	c := s.c
	c.mu.Lock()
	_, known := c.tasks[s.t.info.ID]
	created := s.t.info.Created
	c.mu.Unlock()
	if !known {
		return // expired from history
	}
	if err := c.profiles.add(s.t.info.ID, created, p); err != nil {
		c.cfg.Logger.Warn("Dropping a task profile", zap.String("task", s.t.info.ID), zap.Error(err))
	}
	c.journal.touch(s.t.info.ID, true)
	// The task may have left the history while merging (outside the lock
	// so that a merge never stalls task requests): drop the orphan.
	c.mu.Lock()
	if _, known = c.tasks[s.t.info.ID]; !known {
		c.profiles.remove(s.t.info.ID)
	}
	c.mu.Unlock()
}

func (s *sink) Done(err error) {
	s.once.Do(func() {
		c := s.c
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case s.t.info.State == StatePending && err != nil:
			// It never ran: failed start, no silence.
			c.endLocked(s.t, StateFailed, "start: "+err.Error())
		case err != nil:
			c.endLocked(s.t, StateFailed, err.Error())
		default:
			// An executor may end a task without reporting Started (the
			// process was gone at once): it did start.
			c.startedLocked(s.t)
			c.endLocked(s.t, StateFinished, "")
		}
	})
}
