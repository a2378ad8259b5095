//go:build linux

package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"sync"

	"github.com/contprof/contprof/internal/monitor/httpmon"
)

// exchangeHub passes the HTTP monitor's exchanges (loaded by the scraper)
// to the running network tasks (started by the executor).
type exchangeHub struct {
	mu   sync.RWMutex
	next int
	subs map[int]func(httpmon.Exchange)
}

func (h *exchangeHub) publish(ex httpmon.Exchange) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, fn := range h.subs {
		fn(ex)
	}
}

// subscribe adds fn until the returned func is called.
func (h *exchangeHub) subscribe(fn func(httpmon.Exchange)) (unsubscribe func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = map[int]func(httpmon.Exchange){}
	}
	id := h.next
	h.next++
	h.subs[id] = fn
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs, id)
	}
}
