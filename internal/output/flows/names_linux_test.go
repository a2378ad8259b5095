package flows

import (
	"testing"

	"github.com/contprof/contprof/internal/profiler/netprof"
)

// The names read here are the names netprof writes.
func TestNamesMatchNetprof(t *testing.T) {
	for ours, theirs := range map[string]string{
		MetricIO: netprof.MetricIO, MetricRTT: netprof.MetricRTT, MetricRetransmits: netprof.MetricRetransmits,
		MetricOpened: netprof.MetricOpened, MetricClosed: netprof.MetricClosed, MetricActive: netprof.MetricActive,
		MetricHTTPServer: netprof.MetricHTTPServer, MetricHTTPClient: netprof.MetricHTTPClient,
		AttrPeerAddress: netprof.AttrPeerAddress, AttrPeerPort: netprof.AttrPeerPort, AttrLocalPort: netprof.AttrLocalPort,
		AttrDirection: netprof.AttrDirection, AttrRole: netprof.AttrRole, AttrPeerPID: netprof.AttrPeerPID,
		AttrPeerService: netprof.AttrPeerService, AttrStatus: netprof.AttrStatus,
	} {
		if ours != theirs {
			t.Errorf("flows reads %q, netprof writes %q", ours, theirs)
		}
	}
}
