package policysource

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// debounce lets an editor finish a multi-step save (truncate + write, or
// write temp + rename) before the file is read.
const debounce = 100 * time.Millisecond

// pollFallback is used when the directory cannot be watched (it does not
// exist yet, or inotify is exhausted).
const pollFallback = time.Second

// File watches one policy file. It watches the directory rather than the
// file, because editors and Kubernetes ConfigMaps replace the file (rename
// or symlink swap), which ends a watch on the file itself.
type File struct {
	path     string
	logger   *zap.Logger
	onUpdate func(Update)

	t        tracker
	watcher  *fsnotify.Watcher
	stop     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// NewFile returns a source for path; onUpdate is called from one goroutine
// at a time, first from Start.
func NewFile(path string, logger *zap.Logger, onUpdate func(Update)) *File {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = filepath.Clean(path)
	}
	return &File{
		path: abs, logger: logger, onUpdate: onUpdate,
		t:    tracker{kind: KindFile, location: abs},
		stop: make(chan struct{}),
	}
}

// Start loads the file once (reporting the result before returning) and
// then follows its changes until Shutdown. A missing file is reported as an
// error update, not returned: it may appear later.
func (f *File) Start() {
	f.reload()
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(filepath.Dir(f.path)); err != nil {
			_ = w.Close()
			w = nil
		}
	}
	if err != nil {
		f.logger.Warn("Cannot watch the policy file's directory; polling it every second instead",
			zap.String("policy_file", f.path), zap.Error(err))
	}
	f.watcher = w
	f.wg.Add(1)
	go f.run()
}

func (f *File) run() {
	defer f.wg.Done()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if f.watcher != nil {
		events, errs = f.watcher.Events, f.watcher.Errors
	}
	var tick <-chan time.Time
	if f.watcher == nil {
		ticker := time.NewTicker(pollFallback)
		defer ticker.Stop()
		tick = ticker.C
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-f.stop:
			return
		case _, ok := <-events:
			if !ok {
				return
			}
			// Any change in the directory may be ours (a symlink swap shows
			// up as events on other names); the content hash filters noise.
			timer.Reset(debounce)
		case err, ok := <-errs:
			if !ok {
				return
			}
			f.logger.Warn("Policy file watch error", zap.String("policy_file", f.path), zap.Error(err))
			timer.Reset(debounce)
		case <-timer.C:
			f.reload()
		case <-tick:
			f.reload()
		}
	}
}

func (f *File) reload() {
	u, changed := f.load()
	if changed {
		f.onUpdate(u)
	}
}

func (f *File) load() (Update, bool) {
	fh, err := os.Open(f.path)
	if err != nil {
		return f.t.failed(fmt.Errorf("%s: %w", f.path, err))
	}
	defer fh.Close()
	data, err := readLimited(fh)
	if err != nil {
		return f.t.failed(fmt.Errorf("%s: %w", f.path, err))
	}
	return f.t.loaded(data)
}

// Shutdown stops watching and waits for the watcher goroutine.
func (f *File) Shutdown() {
	f.stopOnce.Do(func() {
		close(f.stop)
		if f.watcher != nil {
			_ = f.watcher.Close()
		}
	})
	f.wg.Wait()
}
