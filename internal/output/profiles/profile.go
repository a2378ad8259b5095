// Package profiles is the neutral in-memory form of one report interval of
// one profiling task, and its conversion to OTLP profiles (pdata/pprofile)
// and to google pprof.
//
// Conventions follow the OpenTelemetry eBPF profiler so that backends read
// the result unchanged: on-CPU samples are "samples"/"count" with period type
// "cpu"/"nanoseconds" and period 1e9/frequency; off-CPU samples are
// "off_cpu"/"nanoseconds" (Pyroscope names the profile from it); every
// location carries profile.frame.type; mappings carry the executable's build
// ids (GNU, Go and the eBPF profiler's htlhash); every resource has a
// service.name and every sample a timestamp. Conformance checks the result
// against the rules a backend's OTLP ingest applies.
package profiles

import (
	"time"
)

// FrameType says which runtime a frame belongs to; the values are those of
// the profile.frame.type semantic convention.
type FrameType string

const (
	FrameKernel FrameType = "kernel"
	FrameNative FrameType = "native"
	FrameGo     FrameType = "go"
	FrameJVM    FrameType = "jvm"
	FrameV8JS   FrameType = "v8js"
	FrameDotnet FrameType = "dotnet"
	// FrameCPython: a Python function, from the interpreter's frame chain.
	FrameCPython FrameType = "cpython"
)

// Attribute keys used on locations and mappings.
const (
	AttrFrameType      = "profile.frame.type"
	AttrGNUBuildID     = "process.executable.build_id.gnu"
	AttrGoBuildID      = "process.executable.build_id.go"
	AttrHTLHashBuildID = "process.executable.build_id.htlhash"
	AttrServiceName    = "service.name"
	AttrExecutableName = "process.executable.name"
	KernelMappingFile  = "[kernel.kallsyms]"
	unknownFunctionTag = "[unknown]"
	// TruncatedFrame ends (on the root side) a stack that was cut before
	// its outermost frame, so a cut stack is never mistaken for a whole one.
	TruncatedFrame = "[truncated]"
)

// Mapping is one memory mapping of a file (or the kernel), kept with its
// build ids so a backend can symbolize what the host could not.
type Mapping struct {
	Start, Limit, Offset uint64
	// File is the path as the process sees it.
	File string
	// BuildID is the hex GNU build id (.note.gnu.build-id), if any.
	BuildID string
	// GoBuildID is the Go build id (.note.go.buildid), if any.
	GoBuildID string
	// HTLHash is the OpenTelemetry eBPF profiler's file id: the first 128
	// bits of SHA-256 over the file's first and last 4 KiB and its length
	// (see HTLHash), for files without build ids and to match that
	// profiler's mappings.
	HTLHash string
}

// Frame is one symbolized (or not) stack frame.
type Frame struct {
	// Function is the display name (demangled); empty when unknown.
	Function string
	// SystemName is the name as found in the binary (mangled), if different.
	SystemName string
	File       string
	Line       int64
	// Address is the absolute instruction address in the process (or kernel).
	Address uint64
	// Mapping is nil when no mapping covers Address (e.g. JIT code).
	Mapping *Mapping
	Type    FrameType
}

// Sample is one distinct stack and its value.
type Sample struct {
	// Frames are leaf first.
	Frames []Frame
	Value  int64
	// Time is when the stack was last seen; zero means "within the
	// profile's interval" and is exported as the interval's start (the
	// profilers aggregate per stack in the kernel and keep no per-event
	// times).
	Time time.Time
	// Labels are per-sample attributes (OTLP sample attributes, pprof
	// labels), e.g. AttrPhase.
	Labels map[string]string
}

// AttrPhase marks a sample of a triggered task as taken before the trigger
// (PhaseBeforeTrigger, from the lookback ring) or from the trigger on
// (PhaseDuring); only profiles that carry lookback samples set it.
const (
	AttrPhase          = "contprof.phase"
	PhaseBeforeTrigger = "before_trigger"
	PhaseDuring        = "during"
)

// Kind describes what the sample values mean.
type Kind struct {
	SampleType, SampleUnit string
	// PeriodType, PeriodUnit and Period describe the sampling period; empty
	// for event-driven kinds such as off-CPU.
	PeriodType, PeriodUnit string
	Period                 int64
}

// OnCPU is the kind of an on-CPU profile sampled at frequency Hz.
func OnCPU(frequency int) Kind {
	k := Kind{SampleType: "samples", SampleUnit: "count", PeriodType: "cpu", PeriodUnit: "nanoseconds"}
	if frequency > 0 {
		k.Period = int64(time.Second) / int64(frequency)
	}
	return k
}

// OffCPU is the kind of an off-CPU profile: time blocked per stack.
func OffCPU() Kind {
	return Kind{SampleType: "off_cpu", SampleUnit: "nanoseconds"}
}

// Profile is one report interval of one task for one process.
type Profile struct {
	Kind       Kind
	Start, End time.Time
	Samples    []Sample
	// Resource holds the process's resource attributes.
	Resource map[string]any
	// Attributes hold the trigger context (see TaskAttributes).
	Attributes map[string]any
}

// Total is the sum of all sample values.
func (p *Profile) Total() int64 {
	var n int64
	for _, s := range p.Samples {
		n += s.Value
	}
	return n
}
