//go:build linux

// Package hotspot talks to a running HotSpot JVM through its own attach
// mechanism (what jcmd does, without a JDK on the host): it finds JVMs from
// their mappings (libjvm.so), starts the JVM's attach listener (an
// .attach_pid file and SIGQUIT), speaks attach protocol version 1 over the
// JVM's /tmp/.java_pid socket, and asks for Compiler.perfmap, which makes
// the JVM write /tmp/perf-<pid>.map with every compiled method and code blob
// (JDK 17+).
//
// Containers work: paths go through /proc/PID/root, file names use the
// JVM's PID in its own namespace (NSpid), and the attach file and the
// connection carry the JVM's effective uid and gid, which the JVM checks.
package hotspot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/contprof/contprof/internal/monitor/procfs"
	"golang.org/x/sys/unix"
)

// Errors that say why a JVM could not be asked; each wraps into the error
// Exec returns, so callers can tell them apart with errors.Is.
var (
	// ErrNotJVM: the process has no libjvm.so mapped.
	ErrNotJVM = errors.New("not a HotSpot JVM (no libjvm.so mapped)")
	// ErrAttachDisabled: the JVM runs with -XX:+DisableAttachMechanism.
	ErrAttachDisabled = errors.New("attach mechanism disabled (-XX:+DisableAttachMechanism)")
	// ErrNoListener: no attach socket appeared after SIGQUIT.
	ErrNoListener = errors.New("attach refused: the JVM started no attach listener")
	// ErrRefused: the JVM closed the connection without an answer (its
	// uid/gid check failed).
	ErrRefused = errors.New("attach refused: the JVM closed the connection without answering")
	// ErrTooOld: the JVM does not know the command (Compiler.perfmap needs
	// JDK 17 or later).
	ErrTooOld = errors.New("JVM too old")
)

// Options tune attaching; the zero value is ready to use.
type Options struct {
	// ProcFS is where proc is mounted; default "/proc".
	ProcFS string
	// ListenerTimeout bounds the wait for the attach socket after SIGQUIT;
	// default 10s (a busy JVM answers the signal at its next safepoint).
	ListenerTimeout time.Duration
}

func (o Options) procfs() string {
	if o.ProcFS == "" {
		return "/proc"
	}
	return o.ProcFS
}

func (o Options) listenerTimeout() time.Duration {
	if o.ListenerTimeout <= 0 {
		return 10 * time.Second
	}
	return o.ListenerTimeout
}

// Target is a JVM process as the attach mechanism needs to see it.
type Target struct {
	PID int // in our PID namespace
	// NSPID is the PID in the JVM's own namespace: the number in its
	// .java_pid, .attach_pid and perf-<pid>.map file names.
	NSPID int
	// UID and GID are the JVM's effective ids (in our user namespace).
	UID, GID int
	// LibJVM is the path of the mapped libjvm.so, as the JVM sees it.
	LibJVM string

	procfs string
}

// Root is the JVM's root directory through proc.
func (t *Target) Root() string { return fmt.Sprintf("%s/%d/root", t.procfs, t.PID) }

// TmpPath is the path through proc of file name in the JVM's /tmp.
func (t *Target) TmpPath(name string) string { return t.Root() + "/tmp/" + name }

// SocketName is the attach socket's name in the JVM's /tmp.
func (t *Target) SocketName() string { return fmt.Sprintf(".java_pid%d", t.NSPID) }

// PerfMapName is the name of the JVM's perf map in its /tmp.
func (t *Target) PerfMapName() string { return fmt.Sprintf("perf-%d.map", t.NSPID) }

// Find describes pid if it is a HotSpot JVM; ErrNotJVM otherwise.
func Find(opts Options, pid int) (*Target, error) {
	procfs := opts.procfs()
	lib, err := LibJVM(procfs, pid)
	if err != nil {
		return nil, err
	}
	t := &Target{PID: pid, NSPID: pid, LibJVM: lib, procfs: procfs}
	status, err := os.ReadFile(fmt.Sprintf("%s/%d/status", procfs, pid))
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	var haveUID, haveGID bool
	for _, line := range strings.Split(string(status), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		switch key {
		case "NSpid":
			if len(f) > 0 {
				if n, err := strconv.Atoi(f[len(f)-1]); err == nil {
					t.NSPID = n
				}
			}
		case "Uid":
			if len(f) >= 2 {
				t.UID, err = strconv.Atoi(f[1])
				haveUID = err == nil
			}
		case "Gid":
			if len(f) >= 2 {
				t.GID, err = strconv.Atoi(f[1])
				haveGID = err == nil
			}
		}
	}
	if !haveUID || !haveGID {
		return nil, fmt.Errorf("pid %d: no effective Uid/Gid in %s/%d/status", pid, procfs, pid)
	}
	return t, nil
}

// LibJVM returns the path of libjvm.so in pid's mappings, or ErrNotJVM.
func LibJVM(procRoot string, pid int) (string, error) {
	lines, err := procfs.ReadMaps(procRoot, pid)
	if err != nil {
		return "", fmt.Errorf("pid %d maps: %w", pid, err)
	}
	for _, ml := range lines {
		if path, _ := ml.File(); filepath.Base(path) == "libjvm.so" {
			return path, nil
		}
	}
	return "", ErrNotJVM
}

// attachDisabled reports whether the JVM was started with
// -XX:+DisableAttachMechanism on its command line or in one of the
// environment variables the launcher reads options from. Checking first
// spares the JVM a SIGQUIT, which without an attach mechanism prints a
// thread dump to its stdout.
func (t *Target) attachDisabled() bool {
	const flag = "-XX:+DisableAttachMechanism"
	if b, err := os.ReadFile(fmt.Sprintf("%s/%d/cmdline", t.procfs, t.PID)); err == nil {
		for _, arg := range strings.Split(string(b), "\x00") {
			if arg == flag {
				return true
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("%s/%d/environ", t.procfs, t.PID)); err == nil {
		for _, kv := range strings.Split(string(b), "\x00") {
			k, v, _ := strings.Cut(kv, "=")
			if k == "JAVA_TOOL_OPTIONS" || k == "JDK_JAVA_OPTIONS" || k == "_JAVA_OPTIONS" {
				for _, opt := range strings.Fields(v) {
					if opt == flag {
						return true
					}
				}
			}
		}
	}
	return false
}

// Result is the JVM's answer to one attach operation.
type Result struct {
	// Code is the operation's result code (0 is success).
	Code int
	// Output is what the operation printed.
	Output string
}

// Jcmd runs one diagnostic command line (as `jcmd <pid> <line>` does) and
// returns the JVM's answer. It starts the attach listener if needed.
func Jcmd(ctx context.Context, opts Options, t *Target, line string) (Result, error) {
	if err := StartListener(ctx, opts, t); err != nil {
		return Result{}, err
	}
	return operate(ctx, t, "jcmd", line)
}

// StartListener makes sure the JVM's attach listener runs: if its socket is
// missing, it creates the attach file (owned by the JVM's user, which the
// JVM checks), sends SIGQUIT and waits for the socket.
func StartListener(ctx context.Context, opts Options, t *Target) error {
	sock := t.TmpPath(t.SocketName())
	if isSocket(sock) {
		return nil
	}
	if t.attachDisabled() {
		return ErrAttachDisabled
	}
	trigger, err := t.createAttachFile()
	if err != nil {
		return err
	}
	defer os.Remove(trigger)
	if err := unix.Kill(t.PID, unix.SIGQUIT); err != nil {
		return fmt.Errorf("signal pid %d: %w", t.PID, err)
	}
	deadline := time.NewTimer(opts.listenerTimeout())
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("%w within %v of SIGQUIT (no %s)", ErrNoListener, opts.listenerTimeout(), sock)
		case <-tick.C:
			if isSocket(sock) {
				return nil
			}
		}
	}
}

func isSocket(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode()&os.ModeSocket != 0
}

// createAttachFile creates .attach_pid<nspid> in the JVM's /tmp (where the
// JVM looks after its working directory), falling back to its working
// directory, and returns the path.
func (t *Target) createAttachFile() (string, error) {
	name := fmt.Sprintf(".attach_pid%d", t.NSPID)
	var errs []error
	for _, dir := range []string{t.Root() + "/tmp", fmt.Sprintf("%s/%d/cwd", t.procfs, t.PID)} {
		p := dir + "/" + name
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.Close()
		// The JVM ignores attach files of users other than itself and
		// root; in a user namespace our root is not its root.
		if err := os.Lchown(p, t.UID, t.GID); err != nil {
			os.Remove(p)
			errs = append(errs, err)
			continue
		}
		return p, nil
	}
	return "", fmt.Errorf("create attach file for pid %d: %w", t.PID, errors.Join(errs...))
}

// operate sends one attach operation (protocol version 1: "1", the command
// and three arguments, each NUL-terminated) and reads the answer: the
// result code on the first line, then the output until the JVM closes.
func operate(ctx context.Context, t *Target, cmd string, args ...string) (Result, error) {
	if len(args) > 3 {
		return Result{}, fmt.Errorf("attach %s: %d arguments, at most 3", cmd, len(args))
	}
	conn, err := t.dial()
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var req bytes.Buffer
	req.WriteString("1\x00" + cmd + "\x00")
	for i := 0; i < 3; i++ {
		if i < len(args) {
			req.WriteString(args[i])
		}
		req.WriteByte(0)
	}
	if _, err := conn.Write(req.Bytes()); err != nil {
		return Result{}, fmt.Errorf("attach %s to pid %d: %w", cmd, t.PID, err)
	}
	answer, err := io.ReadAll(conn)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return Result{}, fmt.Errorf("attach %s to pid %d: read answer: %w", cmd, t.PID, err)
	}
	if len(answer) == 0 {
		return Result{}, ErrRefused
	}
	return parseAnswer(answer)
}

func parseAnswer(b []byte) (Result, error) {
	first, rest, _ := bytes.Cut(b, []byte("\n"))
	code, err := strconv.Atoi(strings.TrimSpace(string(first)))
	if err != nil {
		return Result{}, fmt.Errorf("attach answer: bad result code %q", first)
	}
	return Result{Code: code, Output: string(rest)}, nil
}

// dial connects to the JVM's attach socket with the JVM's effective uid
// and gid: the JVM accepts a peer with its own uid and gid or root, and in
// a user namespace our root is not its root. The ids are switched on one
// locked OS thread only (raw setres[ug]id calls are per thread on Linux),
// keeping the saved uid 0 so the thread can switch back; a thread that
// cannot switch back is not returned to the Go scheduler.
func (t *Target) dial() (*net.UnixConn, error) {
	// Resolve the JVM's /tmp with our own privileges; the connect then
	// goes through our fd, which needs no access to the JVM's /proc entry.
	dir, err := unix.Open(t.Root()+"/tmp", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /tmp of pid %d: %w", t.PID, err)
	}
	defer unix.Close(dir)
	addr := &net.UnixAddr{Net: "unix", Name: fmt.Sprintf("/proc/self/fd/%d/%s", dir, t.SocketName())}

	switchIDs := os.Geteuid() == 0 && (t.UID != 0 || t.GID != 0)
	if !switchIDs {
		return dialUnix(addr, t.PID)
	}
	type result struct {
		c   *net.UnixConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := setEffectiveIDs(t.UID, t.GID); err != nil {
			if setEffectiveIDs(0, 0) == nil {
				runtime.UnlockOSThread()
			}
			ch <- result{nil, fmt.Errorf("attach to pid %d as uid %d gid %d: %w", t.PID, t.UID, t.GID, err)}
			return
		}
		c, err := dialUnix(addr, t.PID)
		if setEffectiveIDs(0, 0) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func dialUnix(addr *net.UnixAddr, pid int) (*net.UnixConn, error) {
	c, err := net.DialUnix("unix", nil, addr)
	if err != nil {
		return nil, fmt.Errorf("connect to the attach socket of pid %d: %w", pid, err)
	}
	return c, nil
}

// setEffectiveIDs sets the effective gid, then uid, of the calling thread
// only; real and saved ids stay.
func setEffectiveIDs(uid, gid int) error {
	if uid == 0 { // back to root: uid first, to regain the right to set gid
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
			return e
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, ^uintptr(0), uintptr(gid), ^uintptr(0)); e != 0 {
			return e
		}
		return nil
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, ^uintptr(0), uintptr(gid), ^uintptr(0)); e != 0 {
		return e
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
		return e
	}
	return nil
}
