//go:build linux

// Package ringread is the read loop of a BPF ring buffer whose programs do
// not wake the reader per record: it polls on a deadline and answers
// flushes, so that a caller can wait until it has seen every record sent.
package ringread

import (
	"errors"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// Run reads rd until it is closed. handle gets each record's bytes (valid
// only during the call); the reader wakes every poll to see records the
// kernel did not signal; after a Flush of rd has been read through, Run
// sends on flushed without blocking.
func Run(rd *ringbuf.Reader, poll time.Duration, flushed chan<- struct{}, handle func(raw []byte)) {
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
