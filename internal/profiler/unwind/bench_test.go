package unwind_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"

	offcpubpf "github.com/contprof/contprof/bpf/offcpu"
	oncpubpf "github.com/contprof/contprof/bpf/oncpu"
	"github.com/contprof/contprof/internal/profiler/unwind"
)

// tableFiles are the executables whose table building is measured: libc,
// a large Go binary (the collector, built by make) and libjvm.so.
func tableFiles(b *testing.B) map[string]string {
	files := map[string]string{}
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib64/libc.so.6"} {
		if _, err := os.Stat(p); err == nil {
			files["libc"] = p
			break
		}
	}
	if p, err := filepath.Abs("../../../bin/otelcol-contprof"); err == nil {
		if _, err := os.Stat(p); err == nil {
			files["otelcol-contprof"] = p
		}
	}
	if m, _ := filepath.Glob("/usr/lib/jvm/*/lib/server/libjvm.so"); len(m) > 0 {
		files["libjvm"] = m[0]
	}
	return files
}

// BenchmarkBuildTable measures building the unwind table of one executable
// (what the background builder does once per build id): time, memory
// allocated while building, and the table's rows and size. Go executables
// are unwound by frame pointer, so only the .eh_frame of their cgo code is
// tabled (the collector has none: 0 rows). Run with:
//
//	go test -run '^$' -bench BuildTable -benchmem ./internal/profiler/unwind/
func BenchmarkBuildTable(b *testing.B) {
	files := tableFiles(b)
	if len(files) == 0 {
		b.Skip("none of libc, bin/otelcol-contprof, libjvm.so found")
	}
	for _, name := range []string{"libc", "otelcol-contprof", "libjvm"} {
		path, ok := files[name]
		if !ok {
			b.Logf("%s: not found, skipped", name)
			continue
		}
		b.Run(name, func(b *testing.B) {
			st, _ := os.Stat(path)
			var tab *unwind.Table
			var heapBefore, heapAfter runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&heapBefore)
			for b.Loop() {
				t, err := unwind.BuildFile(path)
				if err != nil {
					b.Fatal(err)
				}
				tab = t
			}
			runtime.GC()
			runtime.ReadMemStats(&heapAfter)
			b.ReportMetric(float64(tab.Rows()), "rows")
			b.ReportMetric(float64(tab.Bytes()), "table-bytes")
			b.Logf("%s (%s, %.1f MB): %d rows, table %.2f MiB, Go frame pointers %v", name, path, float64(st.Size())/1e6,
				tab.Rows(), float64(tab.Bytes())/(1<<20), tab.GoFramePointers)
		})
	}
}

// BenchmarkVerifierHeadroom loads the on- and off-CPU programs with
// unwinding and reports how many instructions the verifier processed of
// its limit of 1,000,000 (the complexity headroom).
func BenchmarkVerifierHeadroom(b *testing.B) {
	if os.Geteuid() != 0 {
		if os.Getenv("CONTPROF_REQUIRE_EBPF") == "1" {
			b.Fatal("CONTPROF_REQUIRE_EBPF=1 but not root")
		}
		b.Skip("loading BPF programs needs root")
	}
	const limit = 1_000_000
	report := func(name string, p *ebpf.Program) {
		info, err := p.Info()
		if err != nil {
			b.Fatal(err)
		}
		n, ok := info.VerifiedInstructions()
		if !ok {
			b.Skipf("kernel does not report verified instructions")
		}
		insns, _ := info.Instructions()
		b.Logf("%s: %d instructions, verifier processed %d of %d (%.2f%%, headroom %.0fx)", name, len(insns), n, limit, 100*float64(n)/limit, float64(limit)/float64(n))
		b.ReportMetric(float64(n), name+"-verified-insns")
	}
	for b.Loop() {
		cfg := oncpubpf.Config{FilterWords: 1024, Unwind: true, EventBytes: 1 << 20}
		on, err := oncpubpf.Load(cfg)
		if err != nil {
			b.Fatal(err)
		}
		report("oncpu_sample", on.Program())
		on.Close()
		off, err := offcpubpf.Load(offcpubpf.Config{Common: cfg, ThreadEntries: 1024})
		if err != nil {
			b.Fatal(err)
		}
		report("offcpu_switch", off.SwitchProgram())
		off.Close()
	}
}
