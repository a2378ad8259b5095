//go:build linux

package httpmon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// bpfFDs counts this process's file descriptors that refer to BPF
// programs, maps or links.
func bpfFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fdinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		s := string(b)
		if strings.Contains(s, "\nprog_id:") || strings.Contains(s, "\nmap_id:") || strings.Contains(s, "\nlink_id:") {
			n++
		}
	}
	return n
}

// After Close no program, map or link of the monitor exists in the kernel
// and no BPF file descriptor or goroutine (goleak in TestMain) remains.
func TestCloseLeavesNothing(t *testing.T) {
	requireEBPF(t)
	// Auto is the per-syscall tracepoints where tracefs is mounted.
	for _, attach := range []string{AttachAuto, AttachRawTracepoint} {
		t.Run("attach="+attach, func(t *testing.T) {
			fdsBefore := bpfFDs(t)
			srv := startServer(t, goServer(t))
			m, err := Open(Options{Attach: attach})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.AddPID(srv.pid()); err != nil {
				t.Fatal(err)
			}
			load(t, []string{srv.url + "/"}, 10, 2)
			if ph := collect(t, m, srv.pid(), 10, 5*time.Second); total(ph.Server) != 10 {
				t.Errorf("saw %d exchanges, want 10", total(ph.Server))
			}

			var progIDs []ebpf.ProgramID
			mapIDs := map[ebpf.MapID]bool{}
			// Only the attached flavour's programs are loaded.
			sys := []*ebpf.Program{m.objs.SysExitIo, m.objs.RawSysExit}
			sock := []*ebpf.Program{m.objs.SockSend, m.objs.SockRecv, m.objs.SockState}
			loaded, unloaded := sys, sock
			if m.Attachment() == AttachSock {
				loaded, unloaded = sock, sys
			}
			for _, p := range unloaded {
				if p != nil {
					t.Errorf("attachment %s: program %v loaded too", m.Attachment(), p)
				}
			}
			for _, p := range loaded {
				info, err := p.Info()
				if err != nil {
					t.Fatal(err)
				}
				id, _ := info.ID()
				progIDs = append(progIDs, id)
				ids, _ := info.MapIDs() // includes .rodata/.bss
				for _, mid := range ids {
					mapIDs[mid] = true
				}
			}
			if len(mapIDs) < 4 {
				t.Fatalf("programs use %d maps, want ≥ 4", len(mapIDs))
			}
			var linkIDs []link.ID
			for _, l := range m.links {
				info, err := l.Info()
				if err != nil {
					t.Fatal(err)
				}
				linkIDs = append(linkIDs, info.ID)
			}
			if len(linkIDs) == 0 {
				t.Fatal("no links")
			}
			if bpfFDs(t) <= fdsBefore {
				t.Fatal("no BPF file descriptors while open: the check below would prove nothing")
			}

			if err := m.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := m.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if d := m.Drain(); d != nil {
				t.Errorf("Drain after Close = %v", d)
			}
			if err := m.AddPID(1); err == nil {
				t.Error("AddPID after Close succeeded")
			}

			if n := bpfFDs(t); n != fdsBefore {
				t.Errorf("%d BPF fds after Close, %d before Open", n, fdsBefore)
			}
			// The kernel frees objects after an RCU grace period.
			deadline := time.Now().Add(5 * time.Second)
			for {
				var alive []string
				for _, id := range progIDs {
					if p, err := ebpf.NewProgramFromID(id); err == nil {
						p.Close()
						alive = append(alive, fmt.Sprintf("program %d", id))
					} else if !errors.Is(err, os.ErrNotExist) {
						t.Fatalf("program %d: %v", id, err)
					}
				}
				for id := range mapIDs {
					if mp, err := ebpf.NewMapFromID(id); err == nil {
						mp.Close()
						alive = append(alive, fmt.Sprintf("map %d", id))
					}
				}
				for _, id := range linkIDs {
					if l, err := link.NewFromID(id); err == nil {
						l.Close()
						alive = append(alive, fmt.Sprintf("link %d", id))
					}
				}
				if len(alive) == 0 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("still in the kernel 5s after Close: %v", alive)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
