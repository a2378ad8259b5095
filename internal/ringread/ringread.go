//go:build linux

// Package ringread is the read loop of a BPF ring buffer whose programs do
// not wake the reader per record: it polls on a deadline and answers
// flushes, so that a caller can wait until it has seen every record sent.
package ringread

import (
	"errors"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// run reads rd until it is closed. handle gets each record's bytes (valid
// only during the call); the reader wakes every poll to see records the
// kernel did not signal; after a Flush of rd has been read through, run
// sends on flushed without blocking.
func run(rd *ringbuf.Reader, poll time.Duration, flushed chan<- struct{}, handle func(raw []byte)) {
	var rec ringbuf.Record
	rd.SetDeadline(time.Now().Add(poll))
	for {
		err := rd.ReadInto(&rec)
		switch {
		case err == nil:
			handle(rec.RawSample)
		case errors.Is(err, os.ErrDeadlineExceeded):
			rd.SetDeadline(time.Now().Add(poll))
		case errors.Is(err, ringbuf.ErrFlushed):
			select {
			case flushed <- struct{}{}:
			default:
			}
		default: // closed
			return
		}
	}
}

// Reader runs run on a goroutine of its own until Close, and lets callers
// wait until every record sent before their call has been handled.
type Reader struct {
	rd      *ringbuf.Reader
	flushed chan struct{}
	done    chan struct{}
	syncMu  sync.Mutex // one Sync at a time: each waits for its own flush
}

// Start reads the records of ring buffer map m, calling handle with each
// (valid only during the call), in order, on the reader's goroutine.
func Start(m *ebpf.Map, poll time.Duration, handle func(raw []byte)) (*Reader, error) {
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		return nil, err
	}
	r := &Reader{rd: rd, flushed: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		run(rd, poll, r.flushed, handle)
	}()
	return r, nil
}

// Sync returns once every record in the ring when it was called has been
// handled, or the reader has stopped, or timeout has passed (0: no
// timeout). The handler must not wait for what the caller of Sync holds.
func (r *Reader) Sync(timeout time.Duration) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	select { // left by a Sync that timed out
	case <-r.flushed:
	default:
	}
	if r.rd.Flush() != nil {
		return
	}
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-r.flushed:
	case <-r.done:
	case <-expired:
	}
}

// Close stops the reader and waits for its goroutine: the handler is not
// called after Close returns.
func (r *Reader) Close() error {
	err := r.rd.Close()
	<-r.done
	return err
}
