//go:build linux

package netprof

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contprof/contprof/bpf/tcpevents"
	"github.com/contprof/contprof/internal/output/flows"
)

// transfer runs one client connection (send bytes up, reply bytes down,
// then held open for hold) while the task covers server and client, and
// returns every data point the task emitted meanwhile.
func transfer(t *testing.T, task *Task, v *vethPair, server *child, send, reply int, hold time.Duration) ([]point, *child) {
	t.Helper()
	client := startPeer(t, v.client, []string{"OTEL_SERVICE_NAME=np-client"}, "client",
		v.serverIP+":9000", strconv.Itoa(send), strconv.Itoa(reply), hold.String())
	client.before = [2]int64{retransSegs(t, v.client), retransSegs(t, v.server)}
	// The client waits on stdin, so it is covered before it connects.
	waitExe(t, client.pid())
	if err := task.SetPIDs([]int{server.pid(), client.pid()}); err != nil {
		t.Fatal(err)
	}
	task.Collect(time.Now()) // start a clean interval
	client.send(t, "go")
	var all []point
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case l := <-client.lines:
			if l == "done" {
				done = true
			}
		case <-tick.C:
			md, _ := task.Collect(time.Now())
			all = append(all, points(md)...)
		case <-deadline:
			t.Fatal("transfer did not finish in 60s")
		}
	}
	client.cmd.Wait()
	// Both ends close (a lost FIN takes a retransmission timeout or more).
	cflow := map[string]any{flows.AttrRole: "client"}
	sflow := map[string]any{flows.AttrRole: "server", flows.AttrPeerAddress: v.clientIP}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		md, _ := task.Collect(time.Now())
		all = append(all, points(md)...)
		if sumInt(match(all, client.pid(), flows.MetricClosed, cflow)) > 0 && sumInt(match(all, server.pid(), flows.MetricClosed, sflow)) > 0 {
			break
		}
	}
	return all, client
}

// waitExe waits until pid runs the peer program: `ip netns exec` execs it.
func waitExe(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe == peerBin {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d does not run the peer program", pid)
}

func maxDouble(ps []point) float64 {
	var m float64
	for _, p := range ps {
		m = max(m, p.d)
	}
	return m
}

// TestVethFlows runs a client and a server in two network namespaces
// joined by veth, through a clean link, a lossy one (nftables drops 10% of
// what the server receives) and a slow one (tbf shaping with a deep queue
// on the client's egress).
func TestVethFlows(t *testing.T) {
	requireRoot(t)
	for _, flavour := range []string{tcpevents.AttachTracepoint, tcpevents.AttachBTF} {
		t.Run(flavour, func(t *testing.T) {
			if flavour == tcpevents.AttachTracepoint && !tracefsMounted() {
				if os.Getenv("CONTPROF_REQUIRE_EBPF") != "1" {
					t.Skip("tracefs is not mounted: classic tracepoints cannot attach here")
				}
				mountTracefs(t)
			}
			testVethFlows(t, flavour)
		})
	}
}

func tracefsMounted() bool {
	for _, d := range []string{"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"} {
		if _, err := os.Stat(d); err == nil {
			return true
		}
	}
	return false
}

// mountTracefs mounts tracefs for the test, so CI exercises the classic
// tracepoint flavour too, and unmounts it afterwards.
func mountTracefs(t *testing.T) {
	t.Helper()
	const dir = "/sys/kernel/tracing"
	if err := unix.Mount("tracefs", dir, "tracefs", 0, ""); err != nil {
		t.Fatalf("mount tracefs on %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, 0) })
}

func testVethFlows(t *testing.T, flavour string) {
	v := newVethPair(t)
	server := startPeer(t, v.server, []string{"OTEL_SERVICE_NAME=np-server"}, "server", v.serverIP+":9000")
	server.expect(t, "listening", 10*time.Second)

	task, err := Start(Options{PIDs: []int{server.pid()}, Attach: flavour, Attributes: map[string]any{"contprof.task.id": "veth"}})
	if err != nil {
		t.Fatal(err)
	}
	if task.Attachment() != flavour {
		t.Fatalf("attached as %q, want %q", task.Attachment(), flavour)
	}
	defer func() {
		if err := task.Close(); err != nil {
			t.Error(err)
		}
	}()

	const send, reply = 4 << 20, 1 << 20
	var cleanRTT float64

	check := func(t *testing.T, ps []point, client *child, wantLoss bool) (clientRTT float64) {
		t.Helper()
		cflow := map[string]any{flows.AttrRole: "client", flows.AttrPeerAddress: v.serverIP, flows.AttrPeerPort: int64(9000)}
		sflow := map[string]any{flows.AttrRole: "server", flows.AttrPeerAddress: v.clientIP, flows.AttrLocalPort: int64(9000)}
		for _, f := range []map[string]any{cflow, sflow} {
			f["contprof.task.id"] = "veth"
		}
		cpid, spid := client.pid(), server.pid()

		tx := sumInt(match(ps, cpid, flows.MetricIO, with(cflow, flows.AttrDirection, "transmit")))
		rx := sumInt(match(ps, cpid, flows.MetricIO, with(cflow, flows.AttrDirection, "receive")))
		if !within(tx, send+16, 0.05) || !within(rx, reply, 0.05) {
			t.Errorf("client flow: transmitted %d (want %d ±5%%), received %d (want %d ±5%%)", tx, send+16, rx, reply)
		}
		stx := sumInt(match(ps, spid, flows.MetricIO, with(sflow, flows.AttrDirection, "transmit")))
		srx := sumInt(match(ps, spid, flows.MetricIO, with(sflow, flows.AttrDirection, "receive")))
		if !within(srx, send+16, 0.05) || !within(stx, reply, 0.05) {
			t.Errorf("server flow: received %d (want %d ±5%%), transmitted %d (want %d ±5%%)", srx, send+16, stx, reply)
		}
		// The topology: each side names the other process.
		for _, c := range []struct {
			pid     int
			flow    map[string]any
			peer    int
			service string
		}{{cpid, cflow, spid, "np-server"}, {spid, sflow, cpid, "np-client"}} {
			ps := match(ps, c.pid, flows.MetricIO, c.flow)
			if len(ps) == 0 {
				t.Errorf("pid %d: no flow %v", c.pid, c.flow)
				continue
			}
			for _, p := range ps {
				if p.attrs[flows.AttrPeerPID] != int64(c.peer) || p.attrs[flows.AttrPeerService] != c.service {
					t.Errorf("pid %d: peer %v/%v, want %d/%s", c.pid, p.attrs[flows.AttrPeerPID], p.attrs[flows.AttrPeerService], c.peer, c.service)
					break
				}
			}
		}
		if n := sumInt(match(ps, cpid, flows.MetricOpened, cflow)); n != 1 {
			t.Errorf("client flow: %d connections opened, want 1", n)
		}
		if n := sumInt(match(ps, cpid, flows.MetricClosed, cflow)); n != 1 {
			t.Errorf("client flow: %d connections closed, want 1", n)
		}
		if n := sumInt(match(ps, spid, flows.MetricOpened, sflow)); n != 1 {
			t.Errorf("server flow: %d connections opened, want 1", n)
		}
		if d := match(ps, cpid, MetricDuration, cflow); len(d) != 1 || d[0].hcount != 1 || d[0].hsum < 0.5 {
			t.Errorf("client flow: connection duration points %+v, want one of ≥ 0.5s", d)
		}
		// Each namespace holds just this connection: its own TCP counter
		// must agree with what the task attributed to each side.
		cre, sre := sumInt(match(ps, cpid, flows.MetricRetransmits, cflow)), sumInt(match(ps, spid, flows.MetricRetransmits, sflow))
		cns, sns := retransSegs(t, v.client)-client.before[0], retransSegs(t, v.server)-client.before[1]
		if cre != cns || sre != sns {
			t.Errorf("retransmitted segments: client flow %d, server flow %d; the namespaces' RetransSegs %d and %d", cre, sre, cns, sns)
		}
		retrans := cre + sre
		if wantLoss && retrans == 0 {
			t.Error("no retransmits although 10% of packets were dropped")
		}
		if !wantLoss && retrans != 0 {
			t.Errorf("%d retransmits on a clean link; the namespaces' TCP counters:\n%s", retrans, tcpCounters(v))
		}
		rtt := maxDouble(match(ps, cpid, flows.MetricRTT, cflow))
		if rtt <= 0 {
			t.Error("no RTT for the client flow")
		}
		t.Logf("client tx %d rx %d, server tx %d rx %d, retransmits %d, client RTT %.3fms", tx, rx, stx, srx, retrans, rtt*1e3)
		return rtt
	}

	t.Run("clean", func(t *testing.T) {
		ps, client := transfer(t, task, v, server, send, reply, time.Second)
		cleanRTT = check(t, ps, client, false)
	})
	t.Run("loss", func(t *testing.T) {
		run(t, "ip", "netns", "exec", v.server, "nft", "add", "table", "inet", "nploss")
		t.Cleanup(func() {
			exec.Command("ip", "netns", "exec", v.server, "nft", "delete", "table", "inet", "nploss").Run()
		})
		run(t, "ip", "netns", "exec", v.server, "nft", "add", "chain", "inet", "nploss", "in",
			"{ type filter hook input priority 0; policy accept; }")
		run(t, "ip", "netns", "exec", v.server, "nft", "add", "rule", "inet", "nploss", "in",
			"numgen", "random", "mod", "100", "<", "10", "drop")
		ps, client := transfer(t, task, v, server, send, reply, time.Second)
		check(t, ps, client, true)
	})
	t.Run("delay", func(t *testing.T) {
		// No netem here: a token bucket slower than the sender queues
		// every packet. TCP must have no reason to retransmit: the server's
		// receive buffer bounds what is in flight well below the queue
		// limit (no drop) and the queueing delay below the minimum RTO
		// (tail loss probes are off, see newVethPair).
		run(t, "ip", "netns", "exec", v.server, "sysctl", "-q", "-w", "net.ipv4.tcp_rmem=4096 131072 131072")
		run(t, "tc", "-n", v.client, "qdisc", "add", "dev", v.clientIf, "root", "tbf",
			"rate", "8mbit", "burst", "32kb", "limit", "1mb")
		t.Cleanup(func() {
			exec.Command("tc", "-n", v.client, "qdisc", "del", "dev", v.clientIf, "root").Run()
			exec.Command("ip", "netns", "exec", v.server, "sysctl", "-q", "-w", "net.ipv4.tcp_rmem=4096 131072 33554432").Run()
		})
		ps, client := transfer(t, task, v, server, send, reply, time.Second)
		rtt := check(t, ps, client, false)
		// A clean veth has an RTT well under 1ms, a few ms at most when
		// the CPUs are busy.
		if cleanRTT == 0 || rtt < 3*cleanRTT || rtt < 0.02 {
			t.Errorf("RTT with a queueing link %.3fms, clean link %.3fms: want ≥ 3× and ≥ 20ms", rtt*1e3, cleanRTT*1e3)
		}
	})
	st := task.Stats()
	t.Logf("stats %+v", st)
	if st.EventsLost != 0 {
		t.Errorf("%d events lost", st.EventsLost)
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// tcpCounters returns the non-zero retransmission-related TCP counters of
// both namespaces, to tell why TCP retransmitted.
func tcpCounters(v *vethPair) string {
	var b strings.Builder
	for _, ns := range []string{v.client, v.server} {
		out, _ := exec.Command("ip", "netns", "exec", ns, "nstat", "-az").Output()
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) >= 2 && f[1] != "0" && (strings.Contains(f[0], "Retrans") || strings.Contains(f[0], "Loss") ||
				strings.Contains(f[0], "Drop") || strings.Contains(f[0], "Timeout") || strings.Contains(f[0], "Recovery") ||
				strings.Contains(f[0], "Spurious") || strings.Contains(f[0], "Prune") || strings.Contains(f[0], "Collapsed")) {
				fmt.Fprintf(&b, "%s %s %s\n", ns, f[0], f[1])
			}
		}
	}
	return b.String()
}

// retransSegs reads Tcp RetransSegs from /proc/net/snmp in namespace ns.
func retransSegs(t *testing.T, ns string) int64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RetransSegs" && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
	}
	t.Fatalf("no Tcp RetransSegs in /proc/net/snmp of %s", ns)
	return 0
}
