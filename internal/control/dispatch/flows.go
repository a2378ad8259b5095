package dispatch

import "github.com/contprof/contprof/internal/output/flows"

// FlowSink is implemented by a Sink that keeps a network task's flows
// (task control, for the web UI's flow table and topology). A network task
// hands over each report interval's flows; the sink sums them within its
// own bound.
type FlowSink interface {
	AddFlows(fs []flows.Flow)
}
