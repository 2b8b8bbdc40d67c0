//go:build e2e

// The e2e suite: kplay against three real kubeadm control-plane nodes, each
// running REAL etcd v3.6.5 (one 3-member cluster) and a REAL kube-apiserver
// v1.34.4, both built from the Go module proxy and started by the kubelet
// stand-in from kubeadm's own static pod manifests (testbed Options.Real);
// one test also runs kube-controller-manager and kube-scheduler. A poller
// asks every apiserver for /readyz and every etcd member for its health
// every 100 ms during each run and prints the figures in an "E2E ..." line.
// It is behind the e2e build tag so that it runs once, on its own, in
// `make e2e` (part of `make test`), not in parallel with every other package
// of `go test ./...`: a zero-downtime measurement on two shared cores should
// not compete with the race detector of the rest of the suite.
//
//	make e2e     # or: go test -tags e2e -race -count=1 -v -run '^TestE2E' ./integration

package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplay/kplay/testbed"
)

// e2ePeriod is the kubelet stand-in's manifest poll period in the e2e beds.
// The real kubelet resyncs every 20 s but also watches the directory with
// inotify, so it reacts within about a second; 2 s is closer to that than
// a bare 20 s poll.
const e2ePeriod = 2 * time.Second

// realBed starts three real control-plane hosts whose certificates expire in
// 48h; with controllers, they also run kube-controller-manager and
// kube-scheduler.
func realBed(t *testing.T, controllers bool) *testbed.Bed {
	t.Helper()
	t0 := time.Now()
	b := testbed.Require(t, testbed.Options{Hosts: 3, Real: true, Controllers: controllers, CertValidity: 48 * time.Hour, KubeletPeriod: e2ePeriod})
	comps := []string{"etcd", "kube-apiserver"}
	if controllers {
		comps = append(comps, "kube-controller-manager", "kube-scheduler")
	}
	t.Logf("real control plane (3 × %s; etcd %s, kubernetes %s) ready in %v", strings.Join(comps, " + "), testbed.EtcdVersion,
		testbed.KubernetesVersion, time.Since(t0).Round(100*time.Millisecond))
	ctx := t.Context()
	for _, h := range b.Hosts {
		ec, err := h.EtcdClient()
		if err != nil {
			t.Fatal(err)
		}
		members, err := ec.Members(ctx)
		ec.CloseIdleConnections()
		if err != nil {
			t.Fatalf("%s: etcd member list: %v", h.Name, err)
		}
		sort.Strings(members)
		if strings.Join(members, ",") != "cp1,cp2,cp3" {
			t.Fatalf("%s: etcd members %v, want one cluster of cp1, cp2, cp3", h.Name, members)
		}
		for _, comm := range comps {
			if h.PodPID(comm[:min(len(comm), 15)]) == 0 { // comm is cut to 15 bytes
				t.Fatalf("%s: no %s process", h.Name, comm)
			}
		}
	}
	return b
}

// probe is one health request.
type probe struct {
	start, end time.Time
	ok         bool
	err        string
}

// gap is a window in which one target was not confirmed healthy: from the
// end of its last good answer to the end of its next good one (or the end of
// polling).
type gap struct {
	target   string
	from, to time.Time
	firstErr string
}

func (g gap) dur() time.Duration { return g.to.Sub(g.from) }

// poller asks every apiserver for /readyz (admin.conf's credential) and every
// etcd member for /health (the healthcheck-client certificate) every 100 ms,
// and samples the hosts' memory every second.
type poller struct {
	hosts []*testbed.Host
	start time.Time
	stopc chan struct{}
	wg    sync.WaitGroup

	mu   sync.Mutex
	api  map[string][]probe
	etcd map[string][]probe
	end  time.Time
	// retried counts etcd probes that met "leader changed" and were retried,
	// and retryWait is the longest such wait.
	retried   int
	retryWait time.Duration
	// cpuStall0 and cpuStall1 are the machine's CPU pressure stall totals
	// at the start and the end.
	cpuStall0, cpuStall1 time.Duration
	rssPeak              int64
	rssAt                map[string]int64 // by command, at the peak
}

// startPoller starts polling; the credentials are read now, before the run
// renews them (the old ones stay valid and are signed by the same CAs).
func startPoller(t *testing.T, b *testbed.Bed) *poller {
	t.Helper()
	p := &poller{hosts: b.Hosts, start: time.Now(), stopc: make(chan struct{}),
		api: map[string][]probe{}, etcd: map[string][]probe{}, cpuStall0: cpuStall()}
	for _, h := range b.Hosts {
		api, err := h.KubeClient(testbed.AdminConf)
		if err != nil {
			t.Fatal(err)
		}
		ec, err := h.EtcdClient()
		if err != nil {
			t.Fatal(err)
		}
		p.loop(h.Name, p.api, api.Readyz)
		p.loop(h.Name, p.etcd, p.etcdctlHealth(ec))
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			p.sampleRSS()
			select {
			case <-p.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(p.stop)
	return p
}

// probeTimeout bounds one probe, as etcdctl's default --command-timeout
// does: on two shared cores a busy but healthy server can take a second or
// two to answer. A probe that times out counts as a failure.
const probeTimeout = 5 * time.Second

// etcdctlHealth checks a member as `etcdctl endpoint health` does: a
// linearizable read, which waits for a leader and which etcd's Go client
// retries (every ~25 ms until the command timeout) when it fails with
// "etcdserver: leader changed" (gRPC Unavailable). HTTP /health instead
// answers false at once during a leadership hand-over ("leader changed", or
// "RAFT NO LEADER" for the moment between the old leader stepping down and
// the new one taking over, e.g. when the leader is stopped gracefully). So
// the poller retries those two, counts them and records the longest wait,
// which report bounds: a hand-over must end within 2 s (etcd's election
// timeout is 1 s); a lost quorum would not.
func (p *poller) etcdctlHealth(ec *testbed.EtcdClient) func(context.Context) error {
	return func(ctx context.Context) error {
		start := time.Now()
		retried := false
		for {
			err := ec.Health(ctx)
			if retried {
				p.mu.Lock()
				p.retryWait = max(p.retryWait, time.Since(start))
				p.mu.Unlock()
			}
			if err == nil || !(strings.Contains(err.Error(), "leader changed") || strings.Contains(err.Error(), "RAFT NO LEADER")) {
				return err
			}
			if !retried {
				retried = true
				p.mu.Lock()
				p.retried++
				p.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return err
			case <-time.After(25 * time.Millisecond):
			}
		}
	}
}

// loop probes one target every 100 ms until stop.
func (p *poller) loop(name string, into map[string][]probe, check func(context.Context) error) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
			err := check(ctx)
			cancel()
			pr := probe{start: start, end: time.Now(), ok: err == nil}
			if err != nil {
				pr.err = err.Error()
			}
			p.mu.Lock()
			into[name] = append(into[name], pr)
			p.mu.Unlock()
			select {
			case <-p.stopc:
				return
			case <-time.After(time.Until(start.Add(100 * time.Millisecond))):
			}
		}
	}()
}

// sampleRSS records the bed's total resident memory if it is a new peak.
func (p *poller) sampleRSS() {
	var total int64
	by := map[string]int64{}
	for _, h := range p.hosts {
		m, err := h.RSS()
		if err != nil {
			continue
		}
		for comm, v := range m {
			total += v
			by[comm] += v
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if total > p.rssPeak {
		p.rssPeak, p.rssAt = total, by
	}
}

// stop ends polling (idempotent).
func (p *poller) stop() {
	p.mu.Lock()
	if !p.end.IsZero() {
		p.mu.Unlock()
		return
	}
	p.end = time.Now()
	p.cpuStall1 = cpuStall()
	p.mu.Unlock()
	close(p.stopc)
	p.wg.Wait()
}

// cpuStall returns the total time some task waited for a CPU
// (/proc/pressure/cpu "some"), or 0 if the kernel does not report it.
func cpuStall() time.Duration {
	data, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return 0
	}
	for _, f := range strings.Fields(strings.SplitN(string(data), "\n", 2)[0]) {
		if v, ok := strings.CutPrefix(f, "total="); ok {
			us, _ := strconv.ParseInt(v, 10, 64)
			return time.Duration(us) * time.Microsecond
		}
	}
	return 0
}

// gaps returns every window in which a target was not confirmed healthy.
func gaps(probes map[string][]probe, start, end time.Time) []gap {
	var out []gap
	for name, ps := range probes {
		lastOK := start
		var open *gap
		for _, pr := range ps {
			switch {
			case !pr.ok && open == nil:
				open = &gap{target: name, from: lastOK, firstErr: pr.err}
			case pr.ok && open != nil:
				open.to = pr.end
				out = append(out, *open)
				open = nil
			}
			if pr.ok {
				lastOK = pr.end
			}
		}
		if open != nil {
			open.to = end
			out = append(out, *open)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].from.Before(out[j].from) })
	return out
}

// availability sums up one kind of target (apiservers or etcd members).
type availability struct {
	probes, failed int
	slowest        time.Duration            // longest answer to a probe
	longest        map[string]time.Duration // per target
	maxDown        int                      // most targets unconfirmed at once
	twoDown        time.Duration            // total time with ≥ 2 unconfirmed
	noneUp         time.Duration            // longest time with all unconfirmed
	gaps           []gap
}

// analyse computes the figures of one kind of target over n targets.
func analyse(probes map[string][]probe, n int, start, end time.Time) availability {
	a := availability{longest: map[string]time.Duration{}, gaps: gaps(probes, start, end)}
	for name, ps := range probes {
		a.longest[name] = 0
		for _, pr := range ps {
			a.probes++
			a.slowest = max(a.slowest, pr.end.Sub(pr.start))
			if !pr.ok {
				a.failed++
			}
		}
	}
	type ev struct {
		at time.Time
		d  int
	}
	var evs []ev
	for _, g := range a.gaps {
		a.longest[g.target] = max(a.longest[g.target], g.dur())
		evs = append(evs, ev{g.from, +1}, ev{g.to, -1})
	}
	// Ends before starts at the same instant: touching windows do not overlap.
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].at.Equal(evs[j].at) {
			return evs[i].d < evs[j].d
		}
		return evs[i].at.Before(evs[j].at)
	})
	down := 0
	var noneSince time.Time
	for i, e := range evs {
		if down >= 2 && i > 0 {
			a.twoDown += e.at.Sub(evs[i-1].at)
		}
		if down == n && e.d < 0 {
			a.noneUp = max(a.noneUp, e.at.Sub(noneSince))
		}
		down += e.d
		a.maxDown = max(a.maxDown, down)
		if down == n && e.d > 0 {
			noneSince = e.at
		}
	}
	return a
}

// figures returns "cp1 10.2s, cp2 9.8s, cp3 10.0s".
func (a availability) figures() string {
	var names []string
	for n := range a.longest {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.1fs", n, a.longest[n].Seconds()))
	}
	return strings.Join(parts, ", ")
}

// result analyses what the poller saw and logs it.
type pollResult struct {
	api, etcd availability
	retried   int           // etcd probes retried after "leader changed"
	retryWait time.Duration // the longest of those waits
	cpuStall  float64       // share of the time some task waited for a CPU
	hosts     []*testbed.Host
	took      time.Duration
	rssPeak   int64
	rssAt     map[string]int64
}

func (p *poller) result(t *testing.T) pollResult {
	t.Helper()
	p.stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	r := pollResult{
		api:  analyse(p.api, len(p.hosts), p.start, p.end),
		etcd: analyse(p.etcd, len(p.hosts), p.start, p.end),
		took: p.end.Sub(p.start), rssPeak: p.rssPeak, rssAt: p.rssAt,
		retried: p.retried, retryWait: p.retryWait, hosts: p.hosts,
		cpuStall: float64(p.cpuStall1-p.cpuStall0) / float64(p.end.Sub(p.start)),
	}
	for _, g := range append(append([]gap{}, r.api.gaps...), r.etcd.gaps...) {
		kind := "apiserver /readyz"
		if strings.Contains(g.firstErr, ":2379") {
			kind = "etcd /health"
		}
		t.Logf("  %s %s not confirmed healthy from +%.1fs to +%.1fs (%.1fs); first error: %s",
			g.target, kind, g.from.Sub(p.start).Seconds(), g.to.Sub(p.start).Seconds(), g.dur().Seconds(), g.firstErr)
	}
	return r
}

// summary is the one-line figure the issue asks for.
func (r pollResult) summary(what string) string {
	return fmt.Sprintf("E2E %s: %.1fs polled; apiserver /readyz every 100ms: %d probes, %d failed, slowest answer %.1fs, longest gap per host: %s; "+
		"at most %d unready at once; longest window with none ready: %.1fs; etcd endpoint health: %d probes, %d failed, slowest answer %.1fs, longest gap per member: %s; "+
		"at most %d unhealthy at once; %d probes met a leader hand-over and were retried as etcdctl does (longest %.1fs); "+
		"peak RSS of the 3 hosts %d MiB (etcd %d MiB, kube-apiserver %d MiB); machine CPU pressure %.0f%% of the time",
		what, r.took.Seconds(), r.api.probes, r.api.failed, r.api.slowest.Seconds(), r.api.figures(), r.api.maxDown, r.api.noneUp.Seconds(),
		r.etcd.probes, r.etcd.failed, r.etcd.slowest.Seconds(), r.etcd.figures(), r.etcd.maxDown,
		r.retried, r.retryWait.Seconds(), r.rssPeak>>20, r.rssAt["etcd"]>>20, r.rssAt["kube-apiserver"]>>20, 100*r.cpuStall)
}

// report logs the figures (t.Logf and a summary line on stdout) and checks
// the zero-downtime guarantee: never more than maxUnready apiservers unready
// (1 for the guarantee), never none ready, never more than one etcd member
// unhealthy (quorum kept), leader hand-overs within 2 s.
func (r pollResult) report(t *testing.T, what string, maxUnready int) {
	t.Helper()
	s := r.summary(what)
	t.Log(s)
	fmt.Println(s)
	if r.api.probes < 3*int(r.took/(200*time.Millisecond)) {
		t.Errorf("only %d apiserver probes in %v: the poller did not poll every 100 ms", r.api.probes, r.took)
	}
	if r.api.maxDown > maxUnready {
		t.Errorf("%d apiservers were unready at the same time (%.1fs in total with ≥ 2 unready), want at most %d", r.api.maxDown, r.api.twoDown.Seconds(), maxUnready)
	}
	if r.api.noneUp > 0 {
		t.Errorf("no apiserver was ready for %.1fs, want 0", r.api.noneUp.Seconds())
	}
	if r.retryWait > 2*time.Second {
		t.Errorf("an etcd member had no leader (or saw it change) for %.1fs, want a hand-over within 2s", r.retryWait.Seconds())
	}
	if r.etcd.maxDown > 1 {
		t.Errorf("%d etcd members were unhealthy at the same time (%.1fs in total), want at most 1: quorum at risk", r.etcd.maxDown, r.etcd.twoDown.Seconds())
	}
	if t.Failed() {
		// Evidence for the failure: what etcd itself complained about.
		for _, h := range r.hosts {
			logEtcdWarnings(t, h)
		}
	}
}

// logEtcdWarnings logs how often the host's etcd warned about slow requests,
// slow disk or leadership, and the last few such warnings.
func logEtcdWarnings(t *testing.T, h *testbed.Host) {
	t.Helper()
	data, err := os.ReadFile(h.Path("/var/log/pods/etcd.log"))
	if err != nil {
		t.Logf("%s: etcd log: %v", h.Name, err)
		return
	}
	counts := map[string]int{}
	var last []string
	for _, l := range strings.Split(string(data), "\n") {
		var e struct {
			Level string `json:"level"`
			TS    string `json:"ts"`
			Msg   string `json:"msg"`
			Took  string `json:"took"`
		}
		if json.Unmarshal([]byte(l), &e) != nil {
			continue
		}
		if e.Level == "warn" || strings.Contains(e.Msg, "leader") || strings.Contains(e.Msg, "took too long") {
			counts[e.Msg]++
			last = append(last, fmt.Sprintf("%s %s %s %s", e.TS, e.Level, e.Msg, e.Took))
		}
	}
	last = last[max(0, len(last)-8):]
	t.Logf("%s: etcd warnings and leadership messages by count: %v; last: %s", h.Name, counts, strings.Join(last, " | "))
}

// servedLeaf returns the certificate served on addr, presenting client (if
// not nil) as client certificate.
func servedLeaf(t *testing.T, addr string, client *tls.Certificate) *x509.Certificate {
	t.Helper()
	var leaf *x509.Certificate
	cfg := &tls.Config{
		InsecureSkipVerify: true, // only to capture the served chain; verified by the caller
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				leaf = cs.PeerCertificates[0]
			}
			return nil
		},
	}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if conn != nil {
		conn.Close()
	}
	if leaf == nil {
		t.Fatalf("TLS to %s: no certificate: %v", addr, err)
	}
	return leaf
}

// checkServed checks that every port of every host serves the certificate
// on its disk, chaining to the right CA, valid ≥ minValid.
func checkServed(t *testing.T, b *testbed.Bed, minValid time.Duration) {
	t.Helper()
	for _, h := range b.Hosts {
		peer, err := tls.LoadX509KeyPair(h.Path("/etc/kubernetes/pki/etcd/peer.crt"), h.Path("/etc/kubernetes/pki/etcd/peer.key"))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			port     int
			cert, ca string
			client   *tls.Certificate
		}{
			{testbed.APIServerPort, "apiserver.crt", "ca.crt", nil},
			{testbed.EtcdClientPort, "etcd/server.crt", "etcd/ca.crt", nil},
			{testbed.EtcdPeerPort, "etcd/peer.crt", "etcd/ca.crt", &peer},
		} {
			addr := net.JoinHostPort(h.Address, strconv.Itoa(c.port))
			disk := readCert(t, h.Path("/etc/kubernetes/pki/"+c.cert))
			served := servedLeaf(t, addr, c.client)
			pool := x509.NewCertPool()
			pool.AddCert(readCert(t, h.Path("/etc/kubernetes/pki/"+c.ca)))
			_, verr := served.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			switch {
			case fingerprint(served) != fingerprint(disk):
				t.Errorf("%s:%d serves %s (not after %s), not %s on disk (not after %s)", h.Name, c.port,
					fingerprint(served)[:16], served.NotAfter.UTC().Format(time.RFC3339), c.cert, disk.NotAfter.UTC().Format(time.RFC3339))
			case verr != nil:
				t.Errorf("%s:%d serves a certificate that does not verify against %s: %v", h.Name, c.port, c.ca, verr)
			case time.Until(served.NotAfter) < minValid:
				t.Errorf("%s:%d serves a certificate valid for %v, want ≥ %v", h.Name, c.port, time.Until(served.NotAfter).Round(time.Hour), minValid)
			default:
				t.Logf("%s:%d serves %s (sha256 %s…, not after %s)", h.Name, c.port, c.cert, fingerprint(served)[:16], served.NotAfter.UTC().Format(time.RFC3339))
			}
		}
	}
}

// waitServedFromDisk waits until h's port serves the certificate on disk.
func waitServedFromDisk(t *testing.T, h *testbed.Host, port int, cert string, timeout time.Duration) {
	t.Helper()
	disk := fingerprint(readCert(t, h.Path("/etc/kubernetes/pki/"+cert)))
	addr := net.JoinHostPort(h.Address, strconv.Itoa(port))
	start := time.Now()
	for fingerprint(servedLeaf(t, addr, nil)) != disk {
		if time.Since(start) > timeout {
			t.Errorf("%s still does not serve %s after %v", addr, cert, timeout)
			return
		}
		time.Sleep(time.Second)
	}
	t.Logf("%s serves %s on disk after %.1fs", addr, cert, time.Since(start).Seconds())
}

// podStarts returns when the kubelet stand-in last started each pod of h.
func podStarts(t *testing.T, h *testbed.Host) map[string]time.Time {
	t.Helper()
	data, err := os.ReadFile(h.Path("/var/lib/kplay-testbed/kubelet-status.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pods []struct {
		Name    string    `json:"name"`
		Running bool      `json:"running"`
		Started time.Time `json:"started"`
	}
	if err := json.Unmarshal(data, &pods); err != nil {
		t.Fatalf("%s: kubelet status: %v", h.Name, err)
	}
	out := map[string]time.Time{}
	for _, p := range pods {
		if p.Running {
			out[p.Name] = p.Started
		}
	}
	return out
}

// checkRunningOnDisk checks that every control-plane pod of h was started
// after the certificates it reads only at start (the apiserver's etcd and
// kubelet client certificates, the controllers'
// kubeconfigs) were last written.
func checkRunningOnDisk(t *testing.T, h *testbed.Host, controllers bool) {
	t.Helper()
	started := podStarts(t, h)
	// etcd is left out: it rereads its certificate files on every new TLS
	// handshake, which checkServed proves on its client and peer ports.
	reads := map[string][]string{
		"kube-apiserver": {"pki/apiserver-etcd-client.crt", "pki/apiserver-kubelet-client.crt", "pki/front-proxy-client.crt", "pki/apiserver.crt"},
	}
	if controllers {
		reads["kube-controller-manager"] = []string{"controller-manager.conf"}
		reads["kube-scheduler"] = []string{"scheduler.conf"}
	}
	for pod, files := range reads {
		s, ok := started[pod]
		if !ok {
			t.Errorf("%s: %s is not running", h.Name, pod)
			continue
		}
		for _, f := range files {
			fi, err := os.Stat(h.Path("/etc/kubernetes/" + f))
			if err != nil {
				t.Fatal(err)
			}
			if s.Before(fi.ModTime()) {
				t.Errorf("%s: %s started at %s, before %s was written at %s: it still uses the old certificate", h.Name, pod,
					s.Format(time.RFC3339Nano), f, fi.ModTime().Format(time.RFC3339Nano))
			}
		}
	}
}

// listNamespaces lists namespaces through every apiserver with the
// kubeconfig at path (server overridden per host).
func listNamespaces(t *testing.T, b *testbed.Bed, path string) {
	t.Helper()
	for _, h := range b.Hosts {
		c, err := testbed.NewKubeClient(path, fmt.Sprintf("https://%s:%d", h.Address, testbed.APIServerPort))
		if err != nil {
			t.Fatal(err)
		}
		ns, err := c.Namespaces(t.Context())
		c.CloseIdleConnections()
		if err != nil {
			t.Errorf("%s: list namespaces with %s: %v", h.Name, path, err)
			continue
		}
		if !strings.Contains(","+strings.Join(ns, ",")+",", ",kube-system,") {
			t.Errorf("%s: namespaces %v lack kube-system", h.Name, ns)
		}
		t.Logf("%s: GET /api/v1/namespaces with %s: %v", h.Name, filepath.Base(path), ns)
	}
}

// restartDurations returns, per host, how long restart_apiserver said each
// component took ("kube-apiserver restarted and healthy in 10.7s").
func restartDurations(t *testing.T, rep *report) map[string]map[string]time.Duration {
	t.Helper()
	re := regexp.MustCompile(`^(\S+) restarted and healthy in ([0-9.]+[a-z]+)( |;|$)`)
	out := map[string]map[string]time.Duration{}
	for _, h := range rep.Hosts {
		for _, s := range h.Steps {
			if s.Type != "restart_apiserver" {
				continue
			}
			for _, d := range s.Details {
				if m := re.FindStringSubmatch(d); m != nil {
					dur, err := time.ParseDuration(m[2])
					if err != nil {
						t.Fatalf("%s: %q: %v", h.Name, d, err)
					}
					if out[h.Name] == nil {
						out[h.Name] = map[string]time.Duration{}
					}
					out[h.Name][m[1]] = dur
				}
			}
		}
	}
	return out
}

// localServed returns the certificate served on 127.0.0.1:port inside h
// (controller-manager and scheduler listen on loopback only), read with
// openssl s_client on the host.
func localServed(t *testing.T, h *testbed.Host, port int) *x509.Certificate {
	t.Helper()
	out, err := h.Exec(t.Context(), "sh", "-c",
		fmt.Sprintf("echo | timeout 10 openssl s_client -connect 127.0.0.1:%d 2>/dev/null | openssl x509", port))
	if err != nil {
		t.Fatalf("%s: certificate on 127.0.0.1:%d: %v", h.Name, port, err)
	}
	c, err := parseCertPEM(out)
	if err != nil {
		t.Fatalf("%s: certificate on 127.0.0.1:%d: %v", h.Name, port, err)
	}
	return c
}

// controllerCerts returns what controller-manager and scheduler serve on
// every host, by "host:port".
func controllerCerts(t *testing.T, b *testbed.Bed) map[string]*x509.Certificate {
	t.Helper()
	out := map[string]*x509.Certificate{}
	for _, h := range b.Hosts {
		for _, port := range []int{testbed.ControllerManagerPort, testbed.SchedulerPort} {
			out[fmt.Sprintf("%s:%d", h.Name, port)] = localServed(t, h, port)
		}
	}
	return out
}

// checkLeases checks that the controller-manager and scheduler leader leases
// were renewed in the last 30 s: only those components, authenticated by
// their kubeconfigs' client certificates, renew them.
func checkLeases(t *testing.T, b *testbed.Bed) {
	t.Helper()
	c, err := b.Hosts[0].KubeClient(testbed.AdminConf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
		var lease struct {
			Spec struct {
				Holder    string    `json:"holderIdentity"`
				RenewTime time.Time `json:"renewTime"`
			} `json:"spec"`
		}
		// A lease is renewed every 2 s; give a busy machine some slack.
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body, err := c.Do(t.Context(), "GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/"+name, nil)
			if err == nil && code == 200 && json.Unmarshal(body, &lease) == nil && time.Since(lease.Spec.RenewTime) < 30*time.Second {
				t.Logf("lease %s: held by %s, renewed %v ago", name, lease.Spec.Holder, time.Since(lease.Spec.RenewTime).Round(time.Millisecond))
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("lease %s not renewed in the last 30s: HTTP %d, %v, holder %q, renewed %v", name, code, err, lease.Spec.Holder, lease.Spec.RenewTime)
				break
			}
			time.Sleep(time.Second)
		}
	}
}

// renewAll runs renew.yaml (serial: 1) on a bed whose certificates expire in
// 48h, polling throughout, and checks the result: every certificate ≥ 360
// days, every pod restarted onto them, every port serving them, the fetched
// ~/.kube/config working on every apiserver. It returns the poll figures
// and HOME.
func renewAll(t *testing.T, b *testbed.Bed, controllers bool) (pollResult, string) {
	t.Helper()
	home := t.TempDir() // ~/.kube/config goes here, never to the real home
	for _, h := range b.Hosts {
		for name, c := range pkiCerts(t, h) {
			if left := time.Until(c.NotAfter); left > 49*time.Hour || left < 40*time.Hour {
				t.Fatalf("%s %s: valid for %v, want about 48h", h.Name, name, left)
			}
		}
	}
	p := startPoller(t, b)
	time.Sleep(time.Second) // a baseline: all ready before the run
	r := run(t, []string{"HOME=" + home}, "run", "../playbooks/renew.yaml", "-i", b.InventoryPath, "--output", "json")
	time.Sleep(time.Second)
	res := p.result(t)
	if r.code != 0 {
		t.Fatalf("kplay run renew.yaml: exit %d", r.code)
	}
	rep := decodeReport(t, r.stdout)
	for _, h := range rep.Hosts {
		if h.Status != "changed" {
			t.Errorf("%s: status %q, want changed", h.Name, h.Status)
		}
	}
	took := restartDurations(t, rep)
	t.Logf("kplay run took %.1fs; restart_apiserver per host: %v", rep.DurationSec, took)
	// etcd rereads its renewed certificates and is not restarted; the
	// apiserver (and the controllers) read theirs at start.
	want := 1
	if controllers {
		want = 3
	}
	for _, h := range b.Hosts {
		if _, ok := took[h.Name]["etcd"]; ok {
			t.Errorf("%s: etcd was restarted; it rereads its certificates", h.Name)
		}
		if len(took[h.Name]) != want {
			t.Errorf("%s: restarted %v, want %d components", h.Name, took[h.Name], want)
		}
		for name, c := range pkiCerts(t, h) {
			if left := time.Until(c.NotAfter); left < 360*24*time.Hour {
				t.Errorf("%s %s: valid for %v after renewal, want ≥ 360 days", h.Name, name, left.Round(time.Hour))
			}
		}
		checkRunningOnDisk(t, h, controllers)
	}
	checkServed(t, b, 360*24*time.Hour)
	cfg := filepath.Join(home, ".kube", "config")
	if fi, err := os.Stat(cfg); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("fetched ~/.kube/config: %v (mode %v)", err, fi)
	}
	_, certPEM, _ := kubeconfigCreds(t, cfg)
	if leaf, err := parseCertPEM(certPEM); err != nil || time.Until(leaf.NotAfter) < 360*24*time.Hour {
		t.Errorf("the fetched credential is not the renewed one: %v", err)
	}
	listNamespaces(t, b, cfg)
	return res, home
}

// TestE2ERenewZeroDowntime: renew.yaml, serial 1, on three real
// control-plane nodes (etcd and kube-apiserver) whose certificates expire in
// 48h, with the API polled throughout: never more than one apiserver
// unready, never none ready, etcd quorum kept.
func TestE2ERenewZeroDowntime(t *testing.T) {
	b := realBed(t, false)
	res, home := renewAll(t, b, false)
	res.report(t, "renew serial:1", 1)
	// And the real kubectl, as a user would run it: ~/.kube/config from HOME.
	kubectl := kubectlBin(t)
	cmd := exec.CommandContext(t.Context(), kubectl, "get", "namespaces", "-o", "name", "--request-timeout=10s")
	cmd.Env = append(os.Environ(), "HOME="+home, "KUBECONFIG=")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "namespace/kube-system") {
		t.Errorf("HOME=%s kubectl get namespaces: %v\n%s", home, err, out)
	} else {
		t.Logf("kubectl %s get namespaces (fetched ~/.kube/config):\n%s", testbed.KubernetesVersion, out)
	}
}

// TestE2EControllersOntoRenewedKubeconfigs: the same renewal on nodes that
// also run kube-controller-manager and kube-scheduler, which read their
// kubeconfigs (renewed client certificates) only at start. All four
// components are restarted, one at a time; the controllers serve new
// certificates on 10257/10259 (they make them at start) and renew their
// leader leases with the renewed credentials.
//
// The API must stay available (never none ready, etcd quorum kept), but
// here up to two apiservers may be unready at once. With twelve
// control-plane processes on two cores shared with other work (CPU pressure
// 95%+ in every measured run), a restarting apiserver's start-up and the
// controller-manager leader's take-over slowed another apiserver's etcd
// check past its 2 s timeout for 5-6 s in two of five runs, while that
// node's etcd member answered its health checks and kplay was done with the
// node. One earlier run (before the poller kept its connections) even had
// none ready for 4.8 s, which this test would fail. The summary line prints
// the figures.
func TestE2EControllersOntoRenewedKubeconfigs(t *testing.T) {
	b := realBed(t, true)
	before := controllerCerts(t, b)
	res, _ := renewAll(t, b, true)
	res.report(t, "renew serial:1 with controller-manager and scheduler", 2)
	for addr, after := range controllerCerts(t, b) {
		if fingerprint(after) == fingerprint(before[addr]) {
			t.Errorf("%s still serves the certificate it served before the run: not restarted", addr)
		} else {
			t.Logf("%s serves a new self-made certificate (not before %s)", addr, after.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	checkLeases(t, b)
}

// kubectlBin returns the real kubectl, built from the Go module proxy like
// kubeadm (testbed/build/k8s.sh; cached in ~/.cache/kplay/bin).
func kubectlBin(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../testbed/build/k8s.sh", "kubectl")
	cmd.Env = append(os.Environ(), "K8S_VERSION="+testbed.KubernetesVersion)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("building kubectl: %v\n%s", err, lastN(stderr.String(), 2000))
	}
	return strings.TrimSpace(string(out))
}

// lastN returns the last n bytes of s.
func lastN(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// renewWithFault is renew.yaml with restart_apiserver's up_timeout shortened
// and, just before it, a step that breaks the apiserver manifest on one host
// (fault_on): a typo in its command, so it cannot start. (An unknown flag
// fails too, but the kubelet then reloads the 100 MB kube-apiserver every
// period until the timeout: on two shared cores that extra load alone was
// enough, in two of four runs, to starve the etcd leader's heartbeats.)
func renewWithFault(t *testing.T) string {
	t.Helper()
	shipped, err := os.ReadFile("../playbooks/renew.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(shipped)
	const restart = "    - name: restart control plane\n      restart_apiserver: {}\n"
	if !strings.Contains(s, restart) {
		t.Fatalf("renew.yaml has no %q", restart)
	}
	s = strings.Replace(s, restart, `    - name: break the apiserver manifest on one host
      shell: >-
        test {{ host.name }} != {{ fault_on }} ||
        { sed -i 's/^    - kube-apiserver$/    - kube-apiservr/' /etc/kubernetes/manifests/kube-apiserver.yaml &&
        grep -qx '    - kube-apiservr' /etc/kubernetes/manifests/kube-apiserver.yaml; }
    - name: restart control plane
      restart_apiserver: {up_timeout: 60s}
`, 1)
	return writeFile(t, "renew-fault.yaml", s)
}

// TestE2ERestartFailureRollsBack: restart_apiserver fails on cp2 (its
// apiserver manifest was broken after the backup: a typo in the command);
// cp2 is rolled back to its old certificates (still valid for 48h) and
// manifests, byte for byte, and serves again; cp3 keeps the certificates
// the renewal play gave it and is not restarted; the API stays available
// throughout, and the report says how to finish.
func TestE2ERestartFailureRollsBack(t *testing.T) {
	b := realBed(t, false)
	cp1, cp2, cp3 := b.Hosts[0], b.Hosts[1], b.Hosts[2]
	pb := renewWithFault(t)
	before2 := only(snapshot(t, cp2), "etc/kubernetes")
	orig2 := readCert(t, cp2.Path("/etc/kubernetes/pki/apiserver.crt"))
	api3Before := cp3.PodPID("kube-apiserver")
	p := startPoller(t, b)
	time.Sleep(time.Second)
	r := run(t, []string{"HOME=" + t.TempDir()}, "run", pb, "-i", b.InventoryPath, "--var", "fault_on=cp2", "--output", "json")
	// Rolled back means healthy again: wait (bounded) for cp2's apiserver,
	// which the rollback restarted, before the poller stops.
	api2, err := cp2.KubeClient(testbed.AdminConf)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for api2.Readyz(t.Context()) != nil && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	res := p.result(t)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	rep := decodeReport(t, r.stdout)
	h2 := rep.host(t, "cp2")
	if h2.Status != "failed" || !strings.Contains(h2.Error, "restart") || !strings.Contains(h2.State, "rolled back") {
		t.Errorf("cp2: status %q, state %q, error %q; want failed in restart_apiserver and rolled back", h2.Status, h2.State, h2.Error)
	}
	if s := rep.host(t, "cp1").Status; s != "changed" {
		t.Errorf("cp1: status %q, want changed (renewed before cp2 failed)", s)
	}
	h3 := rep.host(t, "cp3")
	if h3.Status != "changed" || !strings.Contains(h3.State, "renew certs") {
		t.Errorf("cp3: status %q, state %q; want changed by the renewal play", h3.Status, h3.State)
	}
	for _, st := range h3.Steps {
		if st.Type == "restart_apiserver" && st.Status != "not run" {
			t.Errorf("cp3's restart step is %s, want not run", st.Status)
		}
	}
	if cp3.PodPID("kube-apiserver") != api3Before {
		t.Error("cp3's apiserver was restarted after cp2 failed")
	}
	if !strings.Contains(rep.Resume, "--limit cp2,cp3") {
		t.Errorf("resume %q, want the command that finishes cp2 and cp3", rep.Resume)
	}
	res.report(t, "restart fails on cp2, rolled back", 1)
	if res.api.longest["cp1"] >= res.api.longest["cp2"] || res.api.longest["cp3"] >= res.api.longest["cp2"] {
		t.Errorf("cp2's apiserver gap (%v) should be the longest: it ran the broken manifest until rolled back", res.api.longest["cp2"])
	}

	if d := diffSnapshots(before2, only(snapshot(t, cp2), "etc/kubernetes")); len(d) > 0 {
		t.Errorf("cp2's /etc/kubernetes is not byte-identical after rollback: %v", d)
	}
	// cp2 healthy again, on its old certificates: what it serves is what its
	// disk (restored) holds, the original apiserver certificate.
	if err := api2.Readyz(t.Context()); err != nil {
		t.Errorf("cp2's apiserver is not ready after the rollback: %v", err)
	}
	ec2, err := cp2.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	if err := ec2.Health(t.Context()); err != nil {
		t.Errorf("cp2's etcd is not healthy after the rollback: %v", err)
	}
	if got := servedLeaf(t, cp2.Address+":6443", nil); fingerprint(got) != fingerprint(orig2) {
		t.Errorf("cp2's apiserver serves %s, want its original certificate %s", fingerprint(got)[:16], fingerprint(orig2)[:16])
	}
	// cp3 was renewed but not restarted: its apiserver reloads its serving
	// certificate by itself (within about a minute) and etcd at once.
	waitServedFromDisk(t, cp3, testbed.APIServerPort, "apiserver.crt", 2*time.Minute)
	checkServed(t, b, 40*time.Hour)
	checkRunningOnDisk(t, cp1, false)
	checkRunningOnDisk(t, cp2, false)
	if time.Until(readCert(t, cp1.Path("/etc/kubernetes/pki/apiserver.crt")).NotAfter) < 360*24*time.Hour {
		t.Error("cp1 was not renewed")
	}
	listNamespaces(t, b, cp1.Path(testbed.AdminConf))
}

// TestE2EHealthGateWaitsForSlowStart: cp2's apiserver takes 15 s more to
// start (testbed.APIServerStartDelayFile); restart_apiserver waits for it to
// be ready, and cp3's turn begins only after cp2's apiserver is ready and
// its etcd healthy.
func TestE2EHealthGateWaitsForSlowStart(t *testing.T) {
	const delay = 15 * time.Second
	b := realBed(t, false)
	cp2 := b.Hosts[1]
	if err := os.WriteFile(cp2.Path(testbed.APIServerStartDelayFile), []byte(delay.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startPoller(t, b)
	time.Sleep(time.Second)
	r := run(t, []string{"HOME=" + t.TempDir()}, "run", "../playbooks/renew.yaml", "-i", b.InventoryPath, "--output", "json")
	time.Sleep(time.Second)
	res := p.result(t)
	if r.code != 0 {
		t.Fatalf("exit %d: the slow start was failed, not waited for", r.code)
	}
	rep := decodeReport(t, r.stdout)
	took := restartDurations(t, rep)
	t.Logf("restart_apiserver per host: %v", took)
	res.report(t, fmt.Sprintf("health gate, cp2 apiserver start delayed %v", delay), 1)
	if took["cp2"]["kube-apiserver"] < delay {
		t.Errorf("cp2's apiserver restart took %v by kplay's account, want ≥ %v (the delay)", took["cp2"]["kube-apiserver"], delay)
	}
	if res.api.longest["cp2"] < delay {
		t.Errorf("cp2's apiserver was unready for at most %v, want ≥ %v: the delay did not apply", res.api.longest["cp2"], delay)
	}
	// The order: every gap of cp3 (apiserver or etcd) starts after every gap
	// of cp2 has ended.
	var cp2End, cp3Start time.Time
	for _, g := range append(append([]gap{}, res.api.gaps...), res.etcd.gaps...) {
		switch g.target {
		case "cp2":
			if g.to.After(cp2End) {
				cp2End = g.to
			}
		case "cp3":
			if cp3Start.IsZero() || g.from.Before(cp3Start) {
				cp3Start = g.from
			}
		}
	}
	if cp2End.IsZero() || cp3Start.IsZero() {
		t.Fatalf("no restart seen on cp2 (%v) or cp3 (%v)", cp2End, cp3Start)
	}
	t.Logf("cp3's first gap began %.1fs after cp2 was last confirmed healthy again", cp3Start.Sub(cp2End).Seconds())
	if !cp3Start.After(cp2End) {
		t.Errorf("cp3 went down %.1fs before cp2 was healthy again: the health gate did not hold the next batch", cp2End.Sub(cp3Start).Seconds())
	}
	for _, h := range b.Hosts {
		checkRunningOnDisk(t, h, false)
	}
	checkServed(t, b, 360*24*time.Hour)
}
