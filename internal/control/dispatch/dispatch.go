// Package dispatch is the contract between task control (the extension)
// and what runs tasks (the receiver). It is apart from package control
// because a running task hands over profiles in the neutral
// profiles.Profile form, and that package already depends on control.
//
// The start of a task is asynchronous: StartTask only queues it, so that
// whoever requested the task (the processor, inside the metrics pipeline)
// never waits on BPF loading, perf_event_open or symbol preloading. The
// executor then reports Started, or Done with the error that kept it from
// starting. See docs/design.md, "Tasks".
package dispatch // import "github.com/contprof/contprof/internal/control/dispatch"

import (
	"context"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/output/profiles"
)

// Executor runs tasks (the receiver). It may also implement
// control.Admitter and control.StatusReporter.
type Executor interface {
	// Targets lists the targets this executor can run.
	Targets() []policy.Target
	// StartTask queues t and returns at once, without doing the work of
	// starting it. An error means t was not accepted at all (it counts as
	// a failed start). Otherwise the executor starts t on its own
	// goroutine, calls sink.Started once it runs (or sink.Done with the
	// reason it could not start), reports profiles through sink and ends
	// with sink.Done exactly once. ctx is cancelled when the task is
	// cancelled or the collector shuts down, also while t waits to start.
	StartTask(ctx context.Context, t control.Task, sink Sink) error
}

// Sink receives what a task reports.
type Sink interface {
	// Started says the task runs (profilers attached). A task that ends
	// without Started failed to start and holds no silence.
	Started()
	// AddProfile hands over one report interval of the task; task control
	// merges them for download. p is not modified afterwards by either
	// side.
	AddProfile(p *profiles.Profile)
	// Done ends the task; err nil means finished, else failed.
	Done(err error)
}

// Registry is where executors offer themselves.
type Registry interface {
	// RegisterExecutor makes e available for the targets it serves.
	// Unregistering cancels the tasks it still runs.
	RegisterExecutor(e Executor) (unregister func())
}
