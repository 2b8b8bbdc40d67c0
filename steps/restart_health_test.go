package steps

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowPod runs a TLS component on 127.0.0.1:port while its manifest exists
// (polling every 20ms, like a fast kubelet) that reports healthy only
// readyAfter its start, to test restart_apiserver's health gate.
type slowPod struct {
	manifest string
	addr     string
	// readyAfter is how long after a start health turns good; < 0: never.
	readyAfter time.Duration

	mu      sync.Mutex
	srv     *http.Server
	started time.Time
	// events records "stop", "start" and "healthy" (first good answer after
	// a start) with their times.
	events []podEvent
}

type podEvent struct {
	what string
	at   time.Time
}

func (p *slowPod) event(what string) {
	p.events = append(p.events, podEvent{what, time.Now()})
}

// first returns the time of the first event what after t, or zero.
func (p *slowPod) first(what string, after time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.events {
		if e.what == what && e.at.After(after) {
			return e.at
		}
	}
	return time.Time{}
}

// healthy reports whether health is good now, recording the first good answer.
func (p *slowPod) healthy() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	ok := p.readyAfter >= 0 && time.Since(p.started) >= p.readyAfter
	if ok && (len(p.events) == 0 || p.events[len(p.events)-1].what != "healthy") {
		p.event("healthy")
	}
	return ok
}

// runSlowPod writes the manifest and runs the pod until the test ends.
func runSlowPod(t *testing.T, manifest, content, addr string, tlsCfg *tls.Config, mux func(p *slowPod) http.Handler, readyAfter time.Duration) *slowPod {
	t.Helper()
	p := &slowPod{manifest: manifest, addr: addr, readyAfter: readyAfter}
	must(t, os.WriteFile(manifest, []byte(content), 0o600))
	start := func() {
		ln, err := tls.Listen("tcp", addr, tlsCfg)
		if err != nil {
			t.Logf("slow pod %s: %v", addr, err)
			return
		}
		p.mu.Lock()
		p.srv = &http.Server{Handler: mux(p), ReadHeaderTimeout: 5 * time.Second}
		p.started = time.Now()
		p.event("start")
		srv := p.srv
		p.mu.Unlock()
		go srv.Serve(ln)
	}
	stop := func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.srv != nil {
			p.srv.Close()
			p.srv = nil
			p.event("stop")
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer stop()
		for ctx.Err() == nil {
			_, err := os.Stat(manifest)
			p.mu.Lock()
			running := p.srv != nil
			p.mu.Unlock()
			switch {
			case err == nil && !running:
				start()
			case err != nil && running:
				stop()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// etcdManifest is a static pod manifest for etcd serving clients on port.
func etcdManifest(port int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  containers:
  - name: etcd
    command:
    - etcd
    - --advertise-client-urls=https://127.0.0.1:%[1]d
    - --listen-client-urls=https://127.0.0.1:%[1]d
`, port)
}

// startSlowControlPlane runs an etcd that answers /health like etcd 3.6
// (healthy only etcdAfter a start; client certificates from the etcd CA
// required) and an apiserver whose /livez is always 200 but whose /readyz
// is 200 only apiAfter a start.
func startSlowControlPlane(t *testing.T, h *fakeHost, etcdAfter, apiAfter time.Duration) (etcd, api *slowPod) {
	t.Helper()
	pki := filepath.Join(h.root, "etc/kubernetes/pki")
	etcdCert, err := tls.LoadX509KeyPair(filepath.Join(pki, "etcd/server.crt"), filepath.Join(pki, "etcd/server.key"))
	must(t, err)
	caPEM, err := os.ReadFile(filepath.Join(pki, "etcd/ca.crt"))
	must(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	etcdPort := freePort(t)
	etcd = runSlowPod(t, filepath.Join(h.root, "etc/kubernetes/manifests/etcd.yaml"), etcdManifest(etcdPort),
		fmt.Sprintf("127.0.0.1:%d", etcdPort),
		&tls.Config{Certificates: []tls.Certificate{etcdCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert},
		func(p *slowPod) http.Handler {
			mux := http.NewServeMux()
			mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
				if p.healthy() {
					fmt.Fprint(w, `{"health":"true","reason":""}`)
					return
				}
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, `{"health":"false","reason":"RAFT NO LEADER"}`)
			})
			return mux
		}, etcdAfter)
	apiCert, err := tls.LoadX509KeyPair(filepath.Join(pki, "apiserver.crt"), filepath.Join(pki, "apiserver.key"))
	must(t, err)
	apiPort := freePort(t)
	api = runSlowPod(t, filepath.Join(h.root, "etc/kubernetes/manifests/kube-apiserver.yaml"), apiserverManifest(apiPort),
		fmt.Sprintf("127.0.0.1:%d", apiPort), &tls.Config{Certificates: []tls.Certificate{apiCert}},
		func(p *slowPod) http.Handler {
			mux := http.NewServeMux()
			mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
			mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
				if p.healthy() {
					fmt.Fprintln(w, "ok")
					return
				}
				w.WriteHeader(http.StatusInternalServerError)
				fmt.Fprintln(w, "[-]etcd failed: reason withheld\nreadyz check failed")
			})
			return mux
		}, apiAfter)
	deadline := time.Now().Add(10 * time.Second)
	for (etcd.first("start", time.Time{}).IsZero() || api.first("start", time.Time{}).IsZero()) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return etcd, api
}

// TestRestartAPIServerHealthGate: a slow etcd rejoin and a slow apiserver
// readiness are waited for (not failed, not skipped): the apiserver is
// restarted only once etcd reports healthy, and the step returns only once
// /readyz (not just /livez) answers 200.
func TestRestartAPIServerHealthGate(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	const etcdAfter, apiAfter = 1500 * time.Millisecond, 2 * time.Second
	etcd, api := startSlowControlPlane(t, h, etcdAfter, apiAfter)
	// Let the first starts become healthy, as on a running node.
	time.Sleep(apiAfter)
	ctx := testCtx(t)
	t0 := time.Now()
	r, err := newStep(t, "restart_apiserver", fastRestart+"serve_check: none\nrestart: always").Apply(ctx, h.target())
	end := time.Now()
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if r.Message != "restarted etcd, kube-apiserver" || len(r.Details) != 2 {
		t.Fatalf("result: %+v", r)
	}
	etcdStart := etcd.first("start", t0)
	etcdHealthy := etcd.first("healthy", etcdStart)
	apiStop, apiStart := api.first("stop", t0), api.first("start", t0)
	apiReady := api.first("healthy", apiStart)
	for name, at := range map[string]time.Time{"etcd start": etcdStart, "etcd healthy": etcdHealthy, "apiserver stop": apiStop, "apiserver start": apiStart, "apiserver ready": apiReady} {
		if at.IsZero() {
			t.Fatalf("%s not seen during the restart", name)
		}
	}
	t.Logf("etcd restarted, healthy %v later; apiserver stopped %v after that, ready %v after its start; step returned %v after apiserver ready",
		etcdHealthy.Sub(etcdStart).Round(time.Millisecond), apiStop.Sub(etcdHealthy).Round(time.Millisecond),
		apiReady.Sub(apiStart).Round(time.Millisecond), end.Sub(apiReady).Round(time.Millisecond))
	if etcdHealthy.Sub(etcdStart) < etcdAfter {
		t.Errorf("etcd healthy %v after its start, want ≥ %v", etcdHealthy.Sub(etcdStart), etcdAfter)
	}
	if apiStop.Before(etcdHealthy) {
		t.Errorf("the apiserver was stopped at %v, before etcd was healthy again at %v", apiStop, etcdHealthy)
	}
	if end.Before(apiReady) {
		t.Errorf("the step returned at %v, before the apiserver was ready at %v", end, apiReady)
	}
	for i, want := range []string{"etcd restarted and healthy", "kube-apiserver restarted and healthy"} {
		if !strings.HasPrefix(r.Details[i], want) {
			t.Errorf("detail %d = %q, want prefix %q", i, r.Details[i], want)
		}
	}
}

// TestRestartAPIServerHealthGateTimeouts: an etcd that never reports healthy
// and an apiserver that is live but never ready fail the step, saying what
// they last answered.
func TestRestartAPIServerHealthGateTimeouts(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	etcd, api := startSlowControlPlane(t, h, 0, 0)
	ctx := testCtx(t)
	tg := h.target()
	// up_timeout 20s: the fake apiserver must have started (and answered
	// 500) before the gate gives up, even on a loaded machine.
	params := "poll_interval: 100ms\ndown_timeout: 20s\nup_timeout: 20s\nserve_check: none\nrestart: always\n"

	etcd.mu.Lock()
	etcd.readyAfter = -1
	etcd.mu.Unlock()
	_, err := newStep(t, "restart_apiserver", params+"components: [etcd]").Apply(ctx, tg)
	// The gate before anything goes down: nothing is restarted.
	etcdStarts := len(etcd.events)
	if err == nil || !strings.Contains(err.Error(), "this host's etcd member is not healthy, so nothing was restarted") ||
		!strings.Contains(err.Error(), "waiting for etcd to be healthy") || len(etcd.events) != etcdStarts ||
		!strings.Contains(err.Error(), `health answered 503 {"health":"false","reason":"RAFT NO LEADER"}`) {
		t.Errorf("etcd never healthy: %v", err)
	}

	api.mu.Lock()
	api.readyAfter = -1
	api.mu.Unlock()
	_, err = newStep(t, "restart_apiserver", params+"components: [kube-apiserver]").Apply(ctx, tg)
	// The message gives the last real answer, never the state of a probe
	// the deadline cut off (which said "port not listening" half the time).
	if err == nil || !strings.Contains(err.Error(), "/readyz") || !strings.Contains(err.Error(), "readyz answered 500") {
		t.Errorf("apiserver live but never ready: %v", err)
	}
}
