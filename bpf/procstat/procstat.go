//go:build linux

package procstat

import (
	"errors"
	"fmt"
	"io"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Record is one process as the iterator writes it (struct record).
type Record = procstatRecord

// RecordSize is the size of a record in the iterator's output.
const RecordSize = 120

// Record must have the C layout: readers copy records into it directly.
var (
	_ [RecordSize - unsafe.Sizeof(Record{})]byte
	_ [unsafe.Sizeof(Record{}) - RecordSize]byte
)

// Iterator is the loaded and attached task iterator.
type Iterator struct {
	objs procstatObjects
	link *link.Iter
}

// Open loads the program and attaches it as a task iterator. It fails
// without CAP_BPF and CAP_PERFMON (or root), on kernels older than 5.17
// (bpf_loop) and without BTF.
func Open() (*Iterator, error) {
	it := &Iterator{}
	if err := loadProcstatObjects(&it.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load task iterator: verifier rejected the program: %+v", ve)
		}
		return nil, fmt.Errorf("load task iterator: %w", err)
	}
	l, err := link.AttachIter(link.IterOptions{Program: it.objs.Procstat})
	if err != nil {
		it.objs.Close()
		return nil, fmt.Errorf("attach task iterator: %w", err)
	}
	it.link = l
	return it, nil
}

// Read runs the iterator once and appends its whole output to buf: one
// record per user-space process, in PID order.
func (it *Iterator) Read(buf []byte) ([]byte, error) {
	r, err := it.link.Open()
	if err != nil {
		return buf, fmt.Errorf("run task iterator: %w", err)
	}
	defer r.Close()
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return buf, fmt.Errorf("read task iterator: %w", err)
		}
	}
	if len(buf)%RecordSize != 0 {
		return buf, fmt.Errorf("task iterator: %d bytes is not a whole number of %d-byte records", len(buf), RecordSize)
	}
	return buf, nil
}

// Records views buf (Read's output) as records, without copying.
func Records(buf []byte) []Record {
	if len(buf) < RecordSize {
		return nil
	}
	return unsafe.Slice((*Record)(unsafe.Pointer(&buf[0])), len(buf)/RecordSize)
}

// Close detaches and unloads the iterator.
func (it *Iterator) Close() error {
	return errors.Join(it.link.Close(), it.objs.Close())
}
