//go:build linux

package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/collector/consumer"
	"go.uber.org/zap"

	"github.com/contprof/contprof/internal/output/taskevents"
	"github.com/contprof/contprof/receiver/ebpfprocessreceiver/internal/metadata"
)

// taskEvents sends task lifecycle events to the logs pipeline from its own
// goroutine: the transitions happen on task goroutines and in Admit, which
// the controller calls under its lock, and neither may wait for an
// exporter. Events queue up to a bound and are counted as dropped beyond.
type taskEvents struct {
	next   consumer.Logs
	logger *zap.Logger
	// host is the host.name of events without a process (refusals).
	host string

	mu      sync.Mutex
	closed  bool
	dropped int
	ch      chan taskevents.Event
	done    chan struct{}
}

const taskEventsQueue = 1024

func newTaskEvents(next consumer.Logs, logger *zap.Logger, host string) *taskEvents {
	e := &taskEvents{next: next, logger: logger, host: host, ch: make(chan taskevents.Event, taskEventsQueue), done: make(chan struct{})}
	go e.run()
	return e
}

// emit queues ev; a nil receiver (no logs pipeline) does nothing.
func (e *taskEvents) emit(ev taskevents.Event) {
	if e == nil {
		return
	}
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	select {
	case e.ch <- ev:
	default:
		e.dropped++
		if e.dropped == 1 || e.dropped%100 == 0 {
			e.logger.Warn("Task events dropped: the logs pipeline does not keep up", zap.Int("dropped", e.dropped))
		}
	}
}

func (e *taskEvents) run() {
	defer close(e.done)
	for ev := range e.ch {
		// Whatever else is queued goes in the same batch.
		batch := []taskevents.Event{ev}
	fill:
		for len(batch) < 100 {
			select {
			case more, ok := <-e.ch:
				if !ok {
					break fill // closed: the range ends after this send
				}
				batch = append(batch, more)
			default:
				break fill
			}
		}
		e.send(batch)
	}
}

func (e *taskEvents) send(batch []taskevents.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.next.ConsumeLogs(ctx, taskevents.Logs(metadata.ScopeName, e.host, batch...)); err != nil {
		e.logger.Warn("Task events not exported", zap.Int("events", len(batch)), zap.Error(err))
	}
}

// close sends what is queued and stops; emit does nothing afterwards.
func (e *taskEvents) close() {
	if e == nil {
		return
	}
	e.mu.Lock()
	e.closed = true
	close(e.ch)
	e.mu.Unlock()
	<-e.done
}
