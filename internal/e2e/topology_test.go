package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pprofile"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// The fleet topology of a DaemonSet, simulated on one machine: three agent
// collectors, each in its own network namespace (a veth pair to the root
// namespace is its only link, as a node's is) with its own host.name, poll
// one central policy server (HTTP with ETag) and export through one gateway
// collector (OTLP in, OTLP out, the same distribution) to the sink.
//
// The agents share the machine's PID namespace, so each would see every
// process. A node's agent sees only its node's processes; the receiver's
// `include` filter stands in for that node boundary: agent n watches only
// contprof-topo-hot-n and contprof-topo-idle-n. The policy document is the
// same for all agents (the point of a central server) and selects
// ^contprof-topo-hot-, so it can trip only on the agent whose "node" runs a
// hot process.
func TestAgentGatewayTopology(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CONTPROF_REQUIRE_EBPF") == "1" {
				t.Fatalf("CONTPROF_REQUIRE_EBPF=1 but %s is missing (iproute2, util-linux)", tool)
			}
			t.Skipf("%s not found", tool)
		}
	}
	const (
		agents       = 3
		pollInterval = 2 * time.Second
		outage       = 30 * time.Second
	)
	testStart := time.Now()
	hot := workload.BuildC(t, "hotcpu.c")
	idle := workload.BuildC(t, "sleeploop.c")
	sink := startOTLPSink(t)
	nets := newAgentNets(t, agents)
	policies := startPolicyServer(t, "policies: []\n")

	// The gateway listens on every address: each agent reaches it through
	// the root side of its own veth pair.
	gwPort := freePortAll(t)
	gwConfig := writeConfig(t, gatewayYAML(gwPort, sink.addr))
	gateway := startCollector(t, gwConfig)
	gateway.waitFor("Everything is ready", time.Minute)

	type agent struct {
		n     int
		host  string
		api   string
		c     *collector
		net   agentNet
		peak  int64
		start time.Time
	}
	var as []*agent
	for i := range agents {
		n := i + 1
		a := &agent{n: n, host: fmt.Sprintf("topo-node-%d", n), net: nets[i]}
		// Each agent has a process to report metrics on all along.
		workload.Start(t, copyAs(t, idle, fmt.Sprintf("contprof-topo-idle-%d", n)), "200000")
		port := freePort(t) // the agent's own namespace has every port free; any will do
		a.api = fmt.Sprintf("http://%s:%d", a.net.nsIP, port)
		cfg := writeConfig(t, agentYAML(a.host, n, a.net, port, policies.url(a.net.hostIP), pollInterval, fmt.Sprintf("%s:%d", a.net.hostIP, gwPort)))
		// nsenter changes only the network namespace (ip netns exec would
		// also remount /sys, hiding tracefs and the cgroup tree) and execs
		// the collector, so a.c's pid is the collector's.
		a.c = startCollectorVia(t, []string{"nsenter", "--net=/var/run/netns/" + a.net.ns}, cfg)
		a.start = time.Now()
		as = append(as, a)
	}
	for _, a := range as {
		a.c.waitFor("Everything is ready", time.Minute)
	}
	// Peak RSS over the test, sampled each second.
	stopSampling := make(chan struct{})
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		for {
			for _, a := range as {
				if r := procRSS(a.c.cmd.Process.Pid); r > a.peak {
					a.peak = r
				}
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	var stopOnce sync.Once
	stopRSS := func() { stopOnce.Do(func() { close(stopSampling); sampling.Wait() }) }
	defer stopRSS()

	// (1) A policy change at the server reaches every agent within
	// poll_interval + 1 s.
	old := map[int]string{}
	for _, a := range as {
		waitUntil(t, 30*time.Second, a.host+" loads the first policy document", func() bool {
			pv, ok := agentPolicies(a.api)
			if ok && pv.Version != "" && pv.LastError == "" && slices.ContainsFunc(pv.Sources, func(s map[string]any) bool { return s["kind"] == "policy_url" }) {
				old[a.n] = pv.Version
				return true
			}
			return false
		})
	}
	changed := time.Now()
	policies.set(`policies:
  - name: topo-hot
    selector: { service.name: { regex: "^contprof-topo-hot-" } }
    target: on_cpu
    duration: 4s
    lookback: 0s
    items:
      - { monitor: process_cpu, threshold: 15, period: 5, count: 3 }
`)
	var wg sync.WaitGroup
	latency := make([]time.Duration, agents)
	versions := make([]string, agents)
	for i, a := range as {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := changed.Add(pollInterval + 5*time.Second) // measure past the bound, assert below
			for time.Now().Before(deadline) {
				if pv, ok := agentPolicies(a.api); ok && pv.Version != old[a.n] &&
					slices.ContainsFunc(pv.Policies, func(p struct{ Name string }) bool { return p.Name == "topo-hot" }) {
					latency[i], versions[i] = time.Since(changed), pv.Version
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			latency[i] = -1
		}()
	}
	wg.Wait()
	for i, a := range as {
		if latency[i] < 0 || latency[i] > pollInterval+time.Second {
			t.Errorf("%s: the policy change took %v (want within poll_interval %v + 1s; -1 = not seen in %v)", a.host, latency[i], pollInterval, pollInterval+5*time.Second)
		}
		if versions[i] != versions[0] {
			t.Errorf("%s has policy version %q, %s has %q: the same document must give the same version", a.host, versions[i], as[0].host, versions[0])
		}
	}
	t.Logf("policy change reached the agents after %v", latency)
	if t.Failed() {
		t.FailNow()
	}

	// (2) A hot process on agent 1's "node" trips the policy there only.
	hot1 := startBusy(t, hot, "contprof-topo-hot-1")
	task1 := waitTask(t, as[0].api, 60*time.Second, func(x apiTask) bool { return x.Policy == "topo-hot" && x.State == "finished" })
	if len(task1.Processes) != 1 || task1.Processes[0].PID != hot1.PID() {
		t.Fatalf("%s's task %+v: want exactly the hot process %d", as[0].host, task1, hot1.PID())
	}
	hot1.Stop()
	// By now the agents have polled the unchanged document several times.
	if r := policies.requests(); r.notModified == 0 {
		t.Errorf("policy server: %d requests, none answered 304: the agents do not send If-None-Match", r.total)
	} else {
		t.Logf("policy server: %d requests, %d answered 304 Not Modified", r.total, r.notModified)
	}
	for _, a := range as[1:] {
		if tasks := getTasks(t, a.api); len(tasks) != 0 {
			t.Fatalf("%s ran tasks %+v, but no process it watches is hot", a.host, tasks)
		}
	}

	// (4) The gateway goes away for 30 s. Meanwhile the other two nodes get
	// hot processes: their tasks run, and their profiles, task events and
	// metrics wait in the agents' sending queues.
	if exited, err := gateway.stop(30 * time.Second); !exited || err != nil {
		t.Fatalf("gateway did not stop cleanly: exited %v, %v", exited, err)
	}
	down := time.Now()
	var busy []*workload.Process
	for _, a := range as[1:] {
		busy = append(busy, startBusy(t, hot, fmt.Sprintf("contprof-topo-hot-%d", a.n)))
	}
	for _, a := range as[1:] {
		waitTask(t, a.api, outage-5*time.Second, func(x apiTask) bool { return x.Policy == "topo-hot" && x.State == "finished" })
	}
	for _, w := range busy {
		w.Stop()
	}
	sink.mu.Lock()
	during := hostTaskProfiles(sink.profiles)
	sink.mu.Unlock()
	if len(during[as[1].host]) > 0 || len(during[as[2].host]) > 0 {
		// Profiles of agents 2 and 3 exist only since the gateway went down.
		t.Fatalf("profiles arrived while the gateway was down: %v", during)
	}
	time.Sleep(time.Until(down.Add(outage)))
	gateway = startCollector(t, gwConfig)
	gateway.waitFor("Everything is ready", time.Minute)
	back := time.Now()

	// Nothing is lost: every profile each agent's task history counts, and
	// the tasks' started/finished events, arrive at the sink with that
	// agent's host.name; so do metrics of every agent from after the
	// outage began.
	want := map[string]map[string]int{}
	for _, a := range as {
		want[a.host] = map[string]int{}
		for _, x := range getTasks(t, a.api) {
			if x.State != "finished" || x.Profile == nil || x.Profile.Profiles == 0 {
				t.Fatalf("%s task %+v: want finished with profiles", a.host, x)
			}
			want[a.host][x.ID] = x.Profile.Profiles
		}
	}
	var got map[string]map[string]int
	waitUntil(t, 90*time.Second, "every emitted profile at the sink", func() bool {
		sink.mu.Lock()
		got = hostTaskProfiles(sink.profiles)
		sink.mu.Unlock()
		for host, tasks := range want {
			for id, n := range tasks {
				if got[host][id] < n {
					return false
				}
			}
		}
		return true
	})
	drained := time.Since(back)
	for host, tasks := range want {
		if len(got[host]) != len(tasks) {
			t.Errorf("%s: the sink has profiles of tasks %v, the agent's history %v", host, got[host], tasks)
		}
		for id, n := range tasks {
			if got[host][id] != n {
				t.Errorf("%s task %s: %d profiles at the sink, %d emitted", host, id, got[host][id], n)
			}
		}
	}
	for host, tasks := range want {
		for id := range tasks {
			for _, name := range []string{"contprof.task.started", "contprof.task.finished"} {
				sink.waitTaskEvent(t, 30*time.Second, func(ev taskEvent) bool {
					return ev.name == name && ev.host == host && ev.attrs["contprof.task.id"] == id
				})
			}
		}
	}
	for _, a := range as {
		sink.waitMetrics(t, 30*time.Second, func(all []pmetric.Metrics) bool { return hostMetricsSince(all, a.host, down) })
	}
	t.Logf("after the %v outage the queued data drained in %v: profiles per host and task %v", outage, drained.Round(100*time.Millisecond), got)

	// The per-node cost of the DaemonSet: each agent's CPU and RSS over
	// the test (start-up, policy polling, 1 s metrics of two processes,
	// one 4 s on-CPU task at the default frequency, 30 s of queueing).
	stopRSS()
	for _, a := range as {
		cpu, err := procCPU(a.c.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		life := time.Since(a.start)
		t.Logf("agent %s: %.2f CPU s over %.0f s (%.1f %% of a core), RSS %d MiB now, peak %d MiB",
			a.host, cpu.Seconds(), life.Seconds(), 100*cpu.Seconds()/life.Seconds(), procRSS(a.c.cmd.Process.Pid)>>20, a.peak>>20)
	}
	if cpu, err := procCPU(gateway.cmd.Process.Pid); err == nil {
		t.Logf("gateway (restarted): %.2f CPU s, RSS %d MiB; whole test %v", cpu.Seconds(), procRSS(gateway.cmd.Process.Pid)>>20, time.Since(testStart).Round(time.Second))
	}
}

// agentNet is an agent's network namespace and the two ends of its veth
// pair.
type agentNet struct {
	ns           string
	hostIP, nsIP string // root side, namespace side
}

// newAgentNets makes n network namespaces, each linked to the root
// namespace by a veth pair on its own /30; they are deleted at cleanup
// (which deletes the pairs too).
func newAgentNets(t *testing.T, n int) []agentNet {
	t.Helper()
	// Random names and subnet: several runs may share the machine.
	tag := fmt.Sprintf("%04x", rand.IntN(1<<16))
	octet := 1 + rand.IntN(254)
	var out []agentNet
	for i := range n {
		a := agentNet{
			ns:     fmt.Sprintf("cptopo%s%d", tag, i),
			hostIP: fmt.Sprintf("10.247.%d.%d", octet, 4*i+1),
			nsIP:   fmt.Sprintf("10.247.%d.%d", octet, 4*i+2),
		}
		hostIf := fmt.Sprintf("cpt%s%d", tag, i)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", a.ns).Run() })
		for _, args := range [][]string{
			{"netns", "add", a.ns},
			{"link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", a.ns},
			{"addr", "add", a.hostIP + "/30", "dev", hostIf},
			{"link", "set", hostIf, "up"},
			{"-n", a.ns, "addr", "add", a.nsIP + "/30", "dev", "eth0"},
			{"-n", a.ns, "link", "set", "eth0", "up"},
			{"-n", a.ns, "link", "set", "lo", "up"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		out = append(out, a)
	}
	return out
}

// freePortAll is a free TCP port on every address.
func freePortAll(t *testing.T) int {
	t.Helper()
	return freePortOn(t, ":0")
}

// policyServer is the central policy server: it serves one document with
// an ETag and answers a matching If-None-Match with 304.
type policyServer struct {
	srv *httptest.Server

	mu          sync.Mutex
	doc, etag   string
	total, n304 int
}

func startPolicyServer(t *testing.T, doc string) *policyServer {
	t.Helper()
	p := &policyServer{}
	p.set(doc)
	l, err := net.Listen("tcp", ":0") // reached through each agent's veth
	if err != nil {
		t.Fatal(err)
	}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.total++
		if r.Header.Get("If-None-Match") == p.etag {
			p.n304++
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", p.etag)
		w.Header().Set("Content-Type", "application/yaml")
		fmt.Fprint(w, p.doc)
	}))
	p.srv.Listener.Close()
	p.srv.Listener = l
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

func (p *policyServer) set(doc string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doc, p.etag = doc, fmt.Sprintf(`"%x"`, sha256.Sum256([]byte(doc)))
}

func (p *policyServer) requests() struct{ total, notModified int } {
	p.mu.Lock()
	defer p.mu.Unlock()
	return struct{ total, notModified int }{p.total, p.n304}
}

// url is the document's address as seen from an agent whose veth has
// root-side address hostIP.
func (p *policyServer) url(hostIP string) string {
	return fmt.Sprintf("http://%s:%d/v1/policies", hostIP, p.srv.Listener.Addr().(*net.TCPAddr).Port)
}

// agentPolicyView is the part of GET /api/v1/policies the test reads.
type agentPolicyView struct {
	Version   string                  `json:"version"`
	LastError string                  `json:"last_error"`
	Sources   []map[string]any        `json:"sources"`
	Policies  []struct{ Name string } `json:"policies"`
}

func agentPolicies(api string) (agentPolicyView, bool) {
	var pv agentPolicyView
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(api + "/api/v1/policies")
	if err != nil {
		return pv, false
	}
	defer resp.Body.Close()
	return pv, resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&pv) == nil
}

// exporterYAML is an otlp_grpc exporter that keeps what it cannot send in
// its queue and retries until the peer is back (well past the outage).
func exporterYAML(endpoint string) string {
	return fmt.Sprintf(`exporters:
  otlp_grpc:
    endpoint: %s
    tls: { insecure: true }
    sending_queue: { enabled: true, queue_size: 5000 }
    retry_on_failure: { enabled: true, initial_interval: 500ms, max_interval: 2s, max_elapsed_time: 5m }
`, endpoint)
}

// pipelinesYAML sends metrics, profiles and logs from receiver (through
// processors) to the exporter.
func pipelinesYAML(receiver, processors string) string {
	var b strings.Builder
	b.WriteString("  pipelines:\n")
	for _, s := range []string{"metrics", "profiles", "logs"} {
		fmt.Fprintf(&b, "    %s:\n      receivers: [%s]\n", s, receiver)
		if s == "metrics" && processors != "" {
			fmt.Fprintf(&b, "      processors: [%s]\n", processors)
		}
		b.WriteString("      exporters: [otlp_grpc]\n")
	}
	return b.String()
}

func gatewayYAML(port int, sink string) string {
	return fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc: { endpoint: "0.0.0.0:%d" }
%s
service:
`, port, exporterYAML(sink)) + pipelinesYAML("otlp", "")
}

func agentYAML(host string, n int, an agentNet, apiPort int, policyURL string, poll time.Duration, gateway string) string {
	return fmt.Sprintf(`extensions:
  profilingpolicy:
    policy_url: { endpoint: %q, poll_interval: %s, timeout: 1s }
    api: { endpoint: "%s:%d" }
receivers:
  ebpfprocess:
    collection_interval: 1s
    host_name: %s
    include: { executables: [contprof-topo-hot-%d, contprof-topo-idle-%d] }
    profiling: { report_interval: 1s }
processors:
  continuousprofiling: {}
%s
service:
  extensions: [profilingpolicy]
`, policyURL, poll, an.nsIP, apiPort, host, n, n, exporterYAML(gateway)) + pipelinesYAML("ebpfprocess", "continuousprofiling")
}

// hostTaskProfiles counts the distinct profiles (task id, start) per
// host.name and task.
func hostTaskProfiles(all []pprofile.Profiles) map[string]map[string]int {
	seen := map[string]bool{}
	out := map[string]map[string]int{}
	for _, pd := range all {
		dict := pd.Dictionary()
		for i := 0; i < pd.ResourceProfiles().Len(); i++ {
			rp := pd.ResourceProfiles().At(i)
			h, _ := rp.Resource().Attributes().Get("host.name")
			host := h.Str()
			sps := rp.ScopeProfiles()
			for j := 0; j < sps.Len(); j++ {
				ps := sps.At(j).Profiles()
				for k := 0; k < ps.Len(); k++ {
					attrs, err := pprofile.FromAttributeIndices(dict.AttributeTable(), ps.At(k), dict)
					if err != nil {
						continue
					}
					id, ok := attrs.Get("contprof.task.id")
					if !ok {
						continue
					}
					key := host + "/" + id.Str() + "@" + strconv.FormatInt(int64(ps.At(k).Time()), 10)
					if seen[key] {
						continue
					}
					seen[key] = true
					if out[host] == nil {
						out[host] = map[string]int{}
					}
					out[host][id.Str()]++
				}
			}
		}
	}
	return out
}

// hostMetricsSince reports whether a data point of host's resources is
// from since or later.
func hostMetricsSince(all []pmetric.Metrics, host string, since time.Time) bool {
	for _, md := range all {
		for i := 0; i < md.ResourceMetrics().Len(); i++ {
			rm := md.ResourceMetrics().At(i)
			if h, _ := rm.Resource().Attributes().Get("host.name"); h.Str() != host {
				continue
			}
			for j := 0; j < rm.ScopeMetrics().Len(); j++ {
				ms := rm.ScopeMetrics().At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					m := ms.At(k)
					var n int
					var at func(int) time.Time
					switch m.Type() {
					case pmetric.MetricTypeGauge:
						n, at = m.Gauge().DataPoints().Len(), func(x int) time.Time { return m.Gauge().DataPoints().At(x).Timestamp().AsTime() }
					case pmetric.MetricTypeSum:
						n, at = m.Sum().DataPoints().Len(), func(x int) time.Time { return m.Sum().DataPoints().At(x).Timestamp().AsTime() }
					}
					for x := 0; x < n; x++ {
						if !at(x).Before(since) {
							return true
						}
					}
				}
			}
		}
	}
	return false
}
