package e2e

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/pprofile"
	"go.opentelemetry.io/collector/pdata/pprofile/pprofileotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // the collector exporters compress by default
	"google.golang.org/grpc/status"

	"github.com/contprof/contprof/internal/output/profiles"
)

// otlpSink is a real OTLP gRPC server (the pdata OTLP services) that keeps
// what the collector exports to it.
type otlpSink struct {
	pmetricotlp.UnimplementedGRPCServer
	addr string

	mu       sync.Mutex
	metrics  []pmetric.Metrics
	profiles []pprofile.Profiles
	logs     []plog.Logs
	// nonconforming lists what profiles.Conformance found in the
	// profiles received; the test fails with it at cleanup.
	nonconforming []error
}

type profilesService struct {
	pprofileotlp.UnimplementedGRPCServer
	s *otlpSink
}

type logsService struct {
	plogotlp.UnimplementedGRPCServer
	s *otlpSink
}

func startOTLPSink(t testing.TB) *otlpSink {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &otlpSink{addr: lis.Addr().String()}
	srv := grpc.NewServer()
	pmetricotlp.RegisterGRPCServer(srv, s)
	pprofileotlp.RegisterGRPCServer(srv, &profilesService{s: s})
	plogotlp.RegisterGRPCServer(srv, &logsService{s: s})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if n := len(s.nonconforming); n > 0 {
			t.Errorf("%d profiles conformance violations (Pyroscope's OTLP ingest rules), first: %v", n, s.nonconforming[:min(n, 10)])
		}
	})
	return s
}

func (s *otlpSink) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	md := pmetric.NewMetrics()
	req.Metrics().CopyTo(md)
	s.metrics = append(s.metrics, md)
	return pmetricotlp.NewExportResponse(), nil
}

func (p *profilesService) Export(_ context.Context, req pprofileotlp.ExportRequest) (pprofileotlp.ExportResponse, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	pd := pprofile.NewProfiles()
	req.Profiles().CopyTo(pd)
	// Every profile an e2e test produces must pass what a backend's
	// ingest checks; a backend would reject the request as this one does.
	if errs := profiles.Conformance(pd); len(errs) > 0 {
		p.s.nonconforming = append(p.s.nonconforming, errs...)
		return pprofileotlp.NewExportResponse(), status.Errorf(codes.InvalidArgument, "nonconforming profiles: %v", errs[0])
	}
	p.s.profiles = append(p.s.profiles, pd)
	return pprofileotlp.NewExportResponse(), nil
}

func (l *logsService) Export(_ context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	ld := plog.NewLogs()
	req.Logs().CopyTo(ld)
	l.s.logs = append(l.s.logs, ld)
	return plogotlp.NewExportResponse(), nil
}

// waitMetrics polls until pred holds for the metrics received so far.
func (s *otlpSink) waitMetrics(t testing.TB, timeout time.Duration, pred func([]pmetric.Metrics) bool) {
	t.Helper()
	waitUntil(t, timeout, "metrics", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return pred(s.metrics)
	})
}

// waitProfiles polls until pred holds for the profiles received so far.
func (s *otlpSink) waitProfiles(t testing.TB, timeout time.Duration, pred func([]pprofile.Profiles) bool) {
	t.Helper()
	waitUntil(t, timeout, "profiles", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return pred(s.profiles)
	})
}

func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: condition not met within %v", what, timeout)
}
