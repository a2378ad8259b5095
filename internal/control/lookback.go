package control

import "time"

// LookbackReporter is optionally implemented by an Executor that keeps a
// lookback record (policy field lookback): what it holds per process, for
// GET /api/v1/processes.
type LookbackReporter interface {
	LookbackCoverage() []LookbackCoverage
}

// LookbackCoverage is one process's lookback record.
type LookbackCoverage struct {
	PID int `json:"pid"`
	// Target is the record's kind: on_cpu or off_cpu (a process can have
	// both).
	Target string `json:"target"`
	// Lookback is the longest lookback of the policies selecting it.
	Lookback time.Duration `json:"lookback"`
	// From and To bound the time the record covers now (zero: empty).
	From    time.Time `json:"from,omitzero"`
	To      time.Time `json:"to,omitzero"`
	Samples uint64    `json:"samples"`
	Bytes   int64     `json:"bytes"`
}
