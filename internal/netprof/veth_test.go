//go:build linux

package netprof

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// transfer runs one client connection (send bytes up, reply bytes down,
// then held open for hold) while the task covers server and client, and
// returns every data point the task emitted meanwhile.
func transfer(t *testing.T, task *Task, v *vethPair, server *child, send, reply int, hold time.Duration) ([]point, *child) {
	t.Helper()
	client := startPeer(t, v.client, []string{"OTEL_SERVICE_NAME=np-client"}, "client",
		v.serverIP+":9000", strconv.Itoa(send), strconv.Itoa(reply), hold.String())
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
	cflow := map[string]any{AttrRole: "client"}
	sflow := map[string]any{AttrRole: "server", AttrPeerAddress: v.clientIP}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		md, _ := task.Collect(time.Now())
		all = append(all, points(md)...)
		if sumInt(match(all, client.pid(), MetricClosed, cflow)) > 0 && sumInt(match(all, server.pid(), MetricClosed, sflow)) > 0 {
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
	v := newVethPair(t)
	server := startPeer(t, v.server, []string{"OTEL_SERVICE_NAME=np-server"}, "server", v.serverIP+":9000")
	server.expect(t, "listening", 10*time.Second)

	task, err := Start(Options{PIDs: []int{server.pid()}, Attributes: map[string]any{"contprof.task.id": "veth"}})
	if err != nil {
		t.Fatal(err)
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
		cflow := map[string]any{AttrRole: "client", AttrPeerAddress: v.serverIP, AttrPeerPort: int64(9000)}
		sflow := map[string]any{AttrRole: "server", AttrPeerAddress: v.clientIP, AttrLocalPort: int64(9000)}
		for _, f := range []map[string]any{cflow, sflow} {
			f["contprof.task.id"] = "veth"
		}
		cpid, spid := client.pid(), server.pid()

		tx := sumInt(match(ps, cpid, MetricIO, with(cflow, AttrDirection, "transmit")))
		rx := sumInt(match(ps, cpid, MetricIO, with(cflow, AttrDirection, "receive")))
		if !within(tx, send+16, 0.05) || !within(rx, reply, 0.05) {
			t.Errorf("client flow: transmitted %d (want %d ±5%%), received %d (want %d ±5%%)", tx, send+16, rx, reply)
		}
		stx := sumInt(match(ps, spid, MetricIO, with(sflow, AttrDirection, "transmit")))
		srx := sumInt(match(ps, spid, MetricIO, with(sflow, AttrDirection, "receive")))
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
			ps := match(ps, c.pid, MetricIO, c.flow)
			if len(ps) == 0 {
				t.Errorf("pid %d: no flow %v", c.pid, c.flow)
				continue
			}
			for _, p := range ps {
				if p.attrs[AttrPeerPID] != int64(c.peer) || p.attrs[AttrPeerService] != c.service {
					t.Errorf("pid %d: peer %v/%v, want %d/%s", c.pid, p.attrs[AttrPeerPID], p.attrs[AttrPeerService], c.peer, c.service)
					break
				}
			}
		}
		if n := sumInt(match(ps, cpid, MetricOpened, cflow)); n != 1 {
			t.Errorf("client flow: %d connections opened, want 1", n)
		}
		if n := sumInt(match(ps, cpid, MetricClosed, cflow)); n != 1 {
			t.Errorf("client flow: %d connections closed, want 1", n)
		}
		if n := sumInt(match(ps, spid, MetricOpened, sflow)); n != 1 {
			t.Errorf("server flow: %d connections opened, want 1", n)
		}
		if d := match(ps, cpid, MetricDuration, cflow); len(d) != 1 || d[0].hcount != 1 || d[0].hsum < 0.5 {
			t.Errorf("client flow: connection duration points %+v, want one of ≥ 0.5s", d)
		}
		retrans := sumInt(match(ps, cpid, MetricRetransmits, cflow)) + sumInt(match(ps, spid, MetricRetransmits, sflow))
		if wantLoss && retrans == 0 {
			t.Error("no retransmits although 10% of packets were dropped")
		}
		if !wantLoss && retrans != 0 {
			t.Errorf("%d retransmits on a clean link", retrans)
		}
		rtt := maxDouble(match(ps, cpid, MetricRTT, cflow))
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
		// No netem here: a token bucket slower than the sender with a
		// 400ms queue delays every packet behind the queue.
		run(t, "tc", "-n", v.client, "qdisc", "add", "dev", v.clientIf, "root", "tbf",
			"rate", "16mbit", "burst", "32kb", "limit", "6mb")
		t.Cleanup(func() { exec.Command("tc", "-n", v.client, "qdisc", "del", "dev", v.clientIf, "root").Run() })
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
