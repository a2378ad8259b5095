//go:build linux

package httpmon

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"
)

// Exchange is one completed HTTP exchange, for consumers that need more
// than the per-interval histograms (network tasks attribute exchanges to
// the connection's peer through PID and FD).
type Exchange struct {
	PID, FD int
	// Client is true when the monitored process sent the request.
	Client   bool
	Method   string
	Status   int
	Start    time.Time
	Duration time.Duration
	// Path has no query string; it is at most 128 bytes.
	Path string
}

// SetObserver makes fn see every completed exchange of a monitored process
// as it arrives, on the monitor's reader goroutine: fn must be quick. nil
// removes the observer.
func (m *Monitor) SetObserver(fn func(Exchange)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.observer = fn
}

// decodeExchange reads a bpf/httpmon.Event record (already length-checked).
func decodeExchange(b []byte) Exchange {
	method := b[offMethod]
	if int(method) >= len(methodNames) {
		method = 0
	}
	n := min(int(b[offPathLen]), pathLen)
	var path string
	if p := urlPath(b[offPath:offPath+n], method); p != nil {
		path = string(p)
	}
	startMono := time.Duration(binary.LittleEndian.Uint64(b[0:]))
	return Exchange{
		PID:      int(binary.LittleEndian.Uint32(b[16:])),
		FD:       int(binary.LittleEndian.Uint32(b[20:])),
		Client:   b[offRole] == roleClient,
		Method:   methodNames[method],
		Status:   int(binary.LittleEndian.Uint16(b[offStatus:])),
		Start:    time.Now().Add(startMono - monotonicNow()),
		Duration: time.Duration(binary.LittleEndian.Uint64(b[offDuration:])),
		Path:     path,
	}
}

// monotonicNow is CLOCK_MONOTONIC, the clock of the kernel's timestamps.
func monotonicNow() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}
