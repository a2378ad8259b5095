// Package e2e holds end-to-end tests: they build (through make) and run the
// ocb-built otelcol-contprof distribution as a real process and talk to it
// over real OTLP and HTTP.
package e2e
