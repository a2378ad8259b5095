//go:build linux

package unwind

import (
	"errors"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// PollInterval is how often an EventReader looks at its ring buffer: the
// programs do not wake it per record (see ustack_output in ustack.h), only
// when the ring is a quarter full.
const PollInterval = 50 * time.Millisecond

// EventReader reads the stack and block events of a ring buffer map in a
// goroutine of its own until Close.
type EventReader struct {
	rd   *ringbuf.Reader
	quit chan struct{}
	done chan struct{}

	syncMu sync.Mutex         // one Sync at a time
	syncs  chan chan struct{} // Syncs waiting for the flush to be read
}

// NewEventReader starts reading events of m, calling handle with each raw
// record (valid only during the call), in order.
func NewEventReader(m *ebpf.Map, handle func(raw []byte)) (*EventReader, error) {
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		return nil, err
	}
	r := &EventReader{rd: rd, quit: make(chan struct{}), done: make(chan struct{}), syncs: make(chan chan struct{}, 1)}
	go r.run(handle)
	return r, nil
}

func (r *EventReader) run(handle func(raw []byte)) {
	defer close(r.done)
	var rec ringbuf.Record
	for {
		select {
		case <-r.quit:
			return
		default:
		}
		r.rd.SetDeadline(time.Now().Add(PollInterval))
		err := r.rd.ReadInto(&rec)
		switch {
		case err == nil:
			handle(rec.RawSample)
		case errors.Is(err, ringbuf.ErrFlushed):
			// Everything in the ring at the flush has been handled.
			select {
			case w := <-r.syncs:
				close(w)
			default:
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, ringbuf.ErrClosed), errors.Is(err, os.ErrClosed):
			return
		default:
			time.Sleep(PollInterval) // unexpected: do not spin
		}
	}
}

// Sync returns once every record in the ring buffer when it was called
// has been handled (a collection sees all events up to its start, not
// only those of the last poll). The handler must not wait for what the
// caller of Sync holds.
func (r *EventReader) Sync() {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	w := make(chan struct{})
	r.syncs <- w
	if err := r.rd.Flush(); err != nil {
		<-r.syncs
		return
	}
	select {
	case <-w:
	case <-r.done:
	}
}

// Close stops the reader and waits for its goroutine. The handler is not
// called after Close returns.
func (r *EventReader) Close() error {
	close(r.quit)
	err := r.rd.Close()
	<-r.done
	return err
}
