package profilingpolicyextension // import "github.com/contprof/contprof/extension/profilingpolicyextension"

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"
	"golang.org/x/net/netutil"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/dispatch"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/control/policysource"
	"github.com/contprof/contprof/internal/control/taskcontrol"
)

// profilingPolicy is the extension; it implements the control plane's
// interfaces (package control and dispatch.Registry).
type profilingPolicy struct {
	cfg    *Config
	set    extension.Settings
	logger *zap.Logger
	now    func() time.Time

	tasks  *taskcontrol.Controller
	merger *policysource.Merger

	// current is read lock-free by Policies; updateMu orders updates and
	// subscriber notifications so that every subscriber sees every set in
	// order and none is missed between Subscribe's first call and the next.
	current  atomic.Pointer[policy.Set]
	updateMu sync.Mutex
	subs     map[int]func(*policy.Set)
	nextSub  int
	host     component.Host
	lastErr  string

	viewsMu sync.Mutex
	views   []*viewEntry

	reportersMu sync.Mutex
	reporters   []*reporterEntry

	// storage keeps the task history when configured.
	storage storage.Client

	file   *policysource.File
	url    *policysource.HTTP
	client *http.Client
	server *http.Server
	addr   net.Addr
	served sync.WaitGroup
}

type viewEntry struct{ v control.ProcessView }

var (
	_ extension.Extension         = (*profilingPolicy)(nil)
	_ control.PolicyReader        = (*profilingPolicy)(nil)
	_ control.PolicySubscriber    = (*profilingPolicy)(nil)
	_ control.Scheduler           = (*profilingPolicy)(nil)
	_ control.ProcessViewRegistry = (*profilingPolicy)(nil)
	_ dispatch.Registry           = (*profilingPolicy)(nil)
)

func newExtension(cfg *Config, set extension.Settings) (*profilingPolicy, error) {
	now := time.Now
	storeBytes := cfg.Limits.ProfileStoreBytes
	if storeBytes == 0 {
		storeBytes = -1 // 0 in the config keeps no profiles
	}
	e := &profilingPolicy{
		cfg: cfg, set: set, logger: set.Logger, now: now,
		tasks: taskcontrol.New(taskcontrol.Config{
			MaxConcurrentTasks: cfg.Limits.MaxConcurrentTasks,
			HistoryMaxTasks:    cfg.Limits.HistoryMaxTasks,
			ProfileStoreBytes:  storeBytes,
			Now:                now,
			Logger:             set.Logger,
		}),
		merger: policysource.NewMerger(now),
		subs:   make(map[int]func(*policy.Set)),
	}
	e.current.Store(e.merger.Current())
	return e, nil
}

func (e *profilingPolicy) Start(ctx context.Context, host component.Host) error {
	e.updateMu.Lock()
	e.host = host
	e.updateMu.Unlock()
	e.openHistory(ctx, host)

	if len(e.cfg.Policies) > 0 {
		e.merger.AddSource(policysource.KindInline, "collector configuration")
	}
	if e.cfg.PolicyFile != "" {
		e.merger.AddSource(policysource.KindFile, e.cfg.PolicyFile)
	}
	urlCfg := e.cfg.PolicyURL.Get()
	if urlCfg != nil {
		e.merger.AddSource(policysource.KindURL, urlCfg.Endpoint)
	}

	if len(e.cfg.Policies) > 0 {
		ps, err := policy.Decode(e.cfg.Policies, "")
		e.apply(policysource.Update{Kind: policysource.KindInline, Policies: ps, Err: err})
	}
	if e.cfg.PolicyFile != "" {
		e.file = policysource.NewFile(e.cfg.PolicyFile, e.logger, e.apply)
		e.file.Start()
	}
	if urlCfg != nil {
		client, err := urlCfg.ToClient(ctx, host.GetExtensions(), e.set.TelemetrySettings)
		if err != nil {
			return errors.Join(errors.New("policy_url: "+err.Error()), e.Shutdown(ctx))
		}
		e.client = client
		e.url = policysource.NewHTTP(client, *urlCfg, e.logger, e.apply)
		e.url.Start(ctx)
	}

	if api := e.cfg.API.Get(); api != nil {
		if err := e.startAPI(ctx, host); err != nil {
			return errors.Join(err, e.Shutdown(ctx))
		}
	}
	e.reportStatus(true)
	return nil
}

func (e *profilingPolicy) startAPI(ctx context.Context, host component.Host) error {
	api := e.cfg.API.Get()
	ln, err := api.ToListener(ctx)
	if err != nil {
		return errors.New("api: cannot listen on " + api.NetAddr.Endpoint + ": " + err.Error())
	}
	srv, err := api.ToServer(ctx, host.GetExtensions(), e.set.TelemetrySettings, e.handler())
	if err != nil {
		_ = ln.Close()
		return errors.New("api: " + err.Error())
	}
	// Each connection costs a goroutine and buffers: past the bound, new
	// connections wait in the kernel's accept queue, so a flood of
	// clients slows the API down instead of growing the collector.
	ln = netutil.LimitListener(ln, e.cfg.Limits.MaxAPIConnections)
	e.server, e.addr = srv, ln.Addr()
	e.logger.Info("Profiling policy API listening", zap.String("endpoint", ln.Addr().String()))
	e.served.Add(1)
	go func() {
		defer e.served.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	}()
	return nil
}

func (e *profilingPolicy) Shutdown(ctx context.Context) error {
	var errs []error
	if e.file != nil {
		e.file.Shutdown()
	}
	if e.url != nil {
		e.url.Shutdown()
	}
	if e.client != nil {
		e.client.CloseIdleConnections()
	}
	if e.server != nil {
		if err := e.server.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		e.served.Wait()
	}
	e.tasks.Shutdown()
	if err := e.closeHistory(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// apply takes one source update; sources call it from their goroutines.
func (e *profilingPolicy) apply(u policysource.Update) {
	e.updateMu.Lock()
	defer e.updateMu.Unlock()
	set, changed, err := e.merger.Apply(u)
	if err != nil {
		e.logger.Error("Policy update from an unknown source", zap.Error(err))
		return
	}
	if changed {
		e.current.Store(set)
		e.logger.Info("Profiling policies changed",
			zap.String("version", set.Version), zap.Int("policies", set.Len()),
			zap.String("source", u.Kind), zap.String("location", u.Location))
		for _, fn := range e.sortedSubs() {
			fn(set)
		}
	}
	e.reportStatusLocked(false)
}

func (e *profilingPolicy) sortedSubs() []func(*policy.Set) {
	ids := make([]int, 0, len(e.subs))
	for id := range e.subs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	fns := make([]func(*policy.Set), len(ids))
	for i, id := range ids {
		fns[i] = e.subs[id]
	}
	return fns
}

func (e *profilingPolicy) reportStatus(force bool) {
	e.updateMu.Lock()
	defer e.updateMu.Unlock()
	e.reportStatusLocked(force)
}

// reportStatusLocked logs and reports the sources' state when it changed:
// one log line and one status event per change, not per poll.
func (e *profilingPolicy) reportStatusLocked(force bool) {
	err := e.merger.Err()
	text := ""
	if err != nil {
		text = err.Error()
	}
	if text == e.lastErr && !force {
		return
	}
	changed := text != e.lastErr
	e.lastErr = text
	if changed {
		if err != nil {
			e.logger.Warn("A policy source is broken; its last good policies stay in force", zap.Error(err))
		} else {
			e.logger.Info("All policy sources are good")
		}
	}
	if e.host == nil {
		return
	}
	if err != nil {
		componentstatus.ReportStatus(e.host, componentstatus.NewRecoverableErrorEvent(err))
	} else if changed || force {
		componentstatus.ReportStatus(e.host, componentstatus.NewEvent(componentstatus.StatusOK))
	}
}

// Policies implements control.PolicyReader.
func (e *profilingPolicy) Policies() *policy.Set { return e.current.Load() }

// Subscribe implements control.PolicySubscriber. fn runs with updates serialized
// and must not call Subscribe or unsubscribe itself.
func (e *profilingPolicy) Subscribe(fn func(*policy.Set)) func() {
	e.updateMu.Lock()
	id := e.nextSub
	e.nextSub++
	e.subs[id] = fn
	fn(e.current.Load())
	e.updateMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			e.updateMu.Lock()
			delete(e.subs, id)
			e.updateMu.Unlock()
		})
	}
}

// RequestTask implements control.Scheduler.
func (e *profilingPolicy) RequestTask(req control.TaskRequest) (string, error) {
	return e.tasks.RequestTask(req)
}

// RegisterExecutor implements dispatch.Registry.
func (e *profilingPolicy) RegisterExecutor(x dispatch.Executor) func() {
	untrack := e.trackReporter(x)
	unregister := e.tasks.RegisterExecutor(x)
	return func() {
		unregister()
		untrack()
	}
}

// RegisterProcessView implements control.ProcessViewRegistry.
func (e *profilingPolicy) RegisterProcessView(v control.ProcessView) func() {
	return register(&e.viewsMu, &e.views, &viewEntry{v: v})
}

// register appends entry to the list mu guards; the func returned removes
// it again.
func register[T any](mu *sync.Mutex, list *[]*T, entry *T) (unregister func()) {
	mu.Lock()
	*list = append(*list, entry)
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		*list = slices.DeleteFunc(*list, func(x *T) bool { return x == entry })
	}
}

// processes lists what every registered view monitors.
func (e *profilingPolicy) processes() ([]control.ProcessStatus, bool) {
	e.viewsMu.Lock()
	views := slices.Clone(e.views)
	e.viewsMu.Unlock()
	var out []control.ProcessStatus
	for _, v := range views {
		out = append(out, v.v.Processes()...)
	}
	return out, len(views) > 0
}
