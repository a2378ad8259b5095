//go:build linux

package unwind

import (
	"errors"
	"os"
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
}

// NewEventReader starts reading events of m, calling handle with each raw
// record (valid only during the call), in order.
func NewEventReader(m *ebpf.Map, handle func(raw []byte)) (*EventReader, error) {
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		return nil, err
	}
	r := &EventReader{rd: rd, quit: make(chan struct{}), done: make(chan struct{})}
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
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, ringbuf.ErrFlushed):
		case errors.Is(err, ringbuf.ErrClosed), errors.Is(err, os.ErrClosed):
			return
		default:
			time.Sleep(PollInterval) // unexpected: do not spin
		}
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
