package steps

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kplay/kplay/internal/hostexec"
)

// fakeKubelet runs an apiserver stand-in (TLS /livez and /readyz) on 127.0.0.1:port
// while the manifest exists, reading its serving certificate when it starts,
// like a component that must be restarted to serve a renewed certificate.
type fakeKubelet struct {
	manifest, certFile, keyFile, restartFile string
	addr                                     string
	// stuck ignores the manifest's removal (the component never stops).
	stuck atomic.Bool
	// staleCert keeps serving the first certificate it loaded, even after restarts.
	staleCert bool
	starts    atomic.Int32

	mu    sync.Mutex
	srv   *http.Server
	first *tls.Certificate
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// apiserverManifest is a static pod manifest for the stand-in.
func apiserverManifest(port int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - name: kube-apiserver
    command:
    - kube-apiserver
    - --advertise-address=127.0.0.1
    - --secure-port=%d
`, port)
}

// startFakeKubelet writes the manifest and runs the kubelet loop until the test ends.
func startFakeKubelet(t *testing.T, h *fakeHost, stale bool) *fakeKubelet {
	t.Helper()
	port := freePort(t)
	kd := filepath.Join(h.root, "etc/kubernetes")
	k := &fakeKubelet{
		manifest: filepath.Join(kd, "manifests/kube-apiserver.yaml"),
		certFile: filepath.Join(kd, "pki/apiserver.crt"), keyFile: filepath.Join(kd, "pki/apiserver.key"),
		restartFile: filepath.Join(h.root, "restart-apiserver"),
		addr:        fmt.Sprintf("127.0.0.1:%d", port), staleCert: stale,
	}
	must(t, os.WriteFile(k.manifest, []byte(apiserverManifest(port)), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_, err := os.Stat(k.manifest)
			exists := err == nil
			k.mu.Lock()
			running := k.srv != nil
			k.mu.Unlock()
			if _, err := os.Stat(k.restartFile); err == nil && running {
				os.Remove(k.restartFile)
				k.stop()
				running = false
			}
			switch {
			case exists && !running:
				if err := k.start(); err != nil {
					t.Logf("fake kubelet: %v", err)
				}
			case !exists && running && !k.stuck.Load():
				k.stop()
			}
			time.Sleep(50 * time.Millisecond)
		}
		k.stop()
	}()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for k.starts.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return k
}

func (k *fakeKubelet) start() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return err
	}
	if k.first == nil {
		k.first = &cert
	}
	if k.staleCert {
		cert = *k.first
	}
	ln, err := tls.Listen("tcp", k.addr, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	k.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go k.srv.Serve(ln)
	k.starts.Add(1)
	return nil
}

func (k *fakeKubelet) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.srv != nil {
		k.srv.Close()
		k.srv = nil
	}
}

const fastRestart = "poll_interval: 100ms\ndown_timeout: 10s\nup_timeout: 20s\n"

func TestRestartAPIServerServesRenewedCert(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	k := startFakeKubelet(t, h, false)
	tg := h.target()
	ctx := testCtx(t)
	manifest, _ := os.ReadFile(k.manifest)
	origServed := servedSHA(t, k.addr)
	renew, err := newStep(t, "renew_certs", "config: "+filepath.Join(h.root, "cfg/renew.yaml")).Apply(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, h)
	p, err := newStep(t, "restart_apiserver", "").Plan(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.Summary, "would restart kube-apiserver ") || !strings.Contains(strings.Join(p.Details, "\n"), "would restart kube-apiserver: no running process named kube-apiserver found") {
		t.Errorf("plan: %s\n%s", p.Summary, strings.Join(p.Details, "\n"))
	}
	if d := diffSnapshots(before, snapshot(t, h)); len(d) > 0 {
		t.Errorf("plan changed the host: %v", d)
	}

	for _, tc := range []struct {
		check     string
		noForward bool // the host's sshd forbids forwarding: ssh falls back to the host
		dials     bool // the check went through the host's DialContext
	}{
		{check: "ssh", dials: true},
		{check: "ssh", noForward: true},
		{check: "controller"},
		{check: "host"},
	} {
		check := tc.check
		h.noForward.Store(tc.noForward)
		dials := h.dials.Load()
		starts := k.starts.Load()
		r, err := newStep(t, "restart_apiserver", fastRestart+"serve_check: "+check).Apply(ctx, tg)
		if (h.dials.Load() > dials) != tc.dials {
			t.Errorf("%+v: %d dials through the host", tc, h.dials.Load()-dials)
		}
		if err != nil {
			t.Fatalf("%s: %v", check, err)
		}
		if k.starts.Load() != starts+1 {
			t.Errorf("%s: the apiserver was started %d times, want once", check, k.starts.Load()-starts)
		}
		if !r.Changed || r.Message != "restarted kube-apiserver" || !strings.Contains(r.Details[0], "serves /etc/kubernetes/pki/apiserver.crt") {
			t.Errorf("%s: %+v", check, r)
		}
		if got, _ := os.ReadFile(k.manifest); string(got) != string(manifest) {
			t.Errorf("%s: manifest changed", check)
		}
		if err := r.Undo.Fn(ctx, tg); err != nil {
			t.Errorf("%s: undo after success: %v", check, err)
		}
	}
	if _, err := os.Stat(filepath.Join(h.root, "etc/kubernetes/kplay-parked")); !os.IsNotExist(err) {
		t.Errorf("park dir left behind: %v", err)
	}
	if servedSHA(t, k.addr) == origServed {
		t.Error("still serving the original certificate after the restart")
	}
	// Rolling back renew_certs restores the old certificates and restarts
	// the apiserver again, so that it serves what is on disk.
	starts := k.starts.Load()
	if err := renew.Undo.Fn(ctx, tg); err != nil {
		t.Fatal(err)
	}
	if k.starts.Load() != starts+1 || servedSHA(t, k.addr) != origServed {
		t.Errorf("after rollback: %d restarts, serving the original: %v", k.starts.Load()-starts, servedSHA(t, k.addr) == origServed)
	}
	h.assertNoSecrets(t, nil)
}

// servedSHA returns the fingerprint of the certificate served on addr.
func servedSHA(t *testing.T, addr string) string {
	t.Helper()
	var d net.Dialer
	chain, err := servedChain(context.Background(), d.DialContext, addr, "from the test")
	if err != nil {
		t.Fatal(err)
	}
	return fingerprint(chain[0].Raw)
}

func TestRestartAPIServerFailures(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	k := startFakeKubelet(t, h, true)
	tg := h.target()
	ctx := testCtx(t)
	if _, err := newStep(t, "renew_certs", "config: "+filepath.Join(h.root, "cfg/renew.yaml")).Apply(ctx, tg); err != nil {
		t.Fatal(err)
	}
	// The component never stops: time out, and the manifest is moved back.
	k.stuck.Store(true)
	_, err := newStep(t, "restart_apiserver", "poll_interval: 100ms\ndown_timeout: 1s").Apply(ctx, tg)
	if err == nil || !strings.Contains(err.Error(), "timed out after 1s waiting for the kubelet to stop kube-apiserver") || !strings.Contains(err.Error(), "every manifest is back in place") {
		t.Errorf("stuck: %v", err)
	}
	if _, err := os.Stat(k.manifest); err != nil {
		t.Errorf("manifest not moved back: %v", err)
	}
	k.stuck.Store(false)

	// It restarts but keeps serving the old certificate: fail.
	_, err = newStep(t, "restart_apiserver", fastRestart).Apply(ctx, tg)
	if err == nil || !strings.Contains(err.Error(), "it was not restarted onto the new certificate") {
		t.Errorf("stale cert: %v", err)
	}

	// Undo after a crash while parked: the manifest goes back.
	r, _ := newStep(t, "restart_apiserver", fastRestart+"serve_check: none").Apply(ctx, tg)
	park := filepath.Join(h.root, "etc/kubernetes/kplay-parked", tg.RunID)
	must(t, os.MkdirAll(park, 0o700))
	must(t, os.Rename(k.manifest, filepath.Join(park, "kube-apiserver.yaml")))
	if r.Undo == nil {
		t.Fatal("no undo")
	}
	if err := r.Undo.Fn(ctx, tg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(k.manifest); err != nil {
		t.Errorf("undo did not put the manifest back: %v", err)
	}
	if !strings.Contains(r.Undo.Restore, "mv /etc/kubernetes/kplay-parked/"+tg.RunID+"/kube-apiserver.yaml /etc/kubernetes/manifests/kube-apiserver.yaml") {
		t.Errorf("restore hint: %s", r.Undo.Restore)
	}

	// Cancelling while parked still moves the manifest back.
	// Cancel once the manifest is parked (not after a fixed time: under
	// load the certificate probe before parking can take seconds).
	k.stuck.Store(true)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := newStep(t, "restart_apiserver", "poll_interval: 100ms").Apply(cctx, tg)
		done <- err
	}()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(k.manifest); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the manifest was never parked")
		}
	}
	cancel()
	err = <-done
	if err == nil || !strings.Contains(err.Error(), "every manifest is back in place") {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := os.Stat(k.manifest); err != nil {
		t.Errorf("manifest not moved back after cancel: %v", err)
	}
}

func TestRestartAPIServerCrictl(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	k := startFakeKubelet(t, h, false)
	tg := h.target()
	ctx := testCtx(t)
	// A crictl stand-in: one container id in a state file; stop replaces it
	// and asks the fake kubelet to restart the apiserver.
	state := filepath.Join(h.root, "crictl-id")
	must(t, os.WriteFile(state, []byte("aaa111\n"), 0o644))
	crictl := fmt.Sprintf(`#!/bin/sh
echo "$*" >> %[1]s.log
case "$1" in
ps) if [ "$6" = '^kube-apiserver$' ]; then cat %[1]s; fi ;;
stop) [ "$2" = "$(cat %[1]s)" ] || exit 1; echo bbb222 > %[1]s; touch %[2]s ;;
esac
`, state, k.restartFile)
	must(t, os.WriteFile(filepath.Join(h.bin, "crictl"), []byte(crictl), 0o755))
	if _, err := newStep(t, "renew_certs", "config: "+filepath.Join(h.root, "cfg/renew.yaml")).Apply(ctx, tg); err != nil {
		t.Fatal(err)
	}
	r, err := newStep(t, "restart_apiserver", fastRestart+"method: crictl").Apply(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Undo != nil || !strings.Contains(r.Details[0], "serves /etc/kubernetes/pki/apiserver.crt") {
		t.Errorf("%+v", r)
	}
	log, _ := os.ReadFile(state + ".log")
	if !strings.Contains(string(log), "stop aaa111") {
		t.Errorf("crictl calls:\n%s", log)
	}
}

func TestProcNetListening(t *testing.T) {
	t.Parallel()
	out := []byte(`  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1936 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:192B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
`)
	for _, c := range []struct {
		port int
		want bool
	}{{8080, true}, {6454, false}, {6443, true}, {2379, false}} {
		if got := procNetListening(out, c.port); got != c.want {
			t.Errorf("port %d: %v, want %v", c.port, got, c.want)
		}
	}
}

func TestManifestFlags(t *testing.T) {
	t.Parallel()
	f, err := manifestFlags([]byte(apiserverManifest(7443)))
	if err != nil || f["--secure-port"] != "7443" || f["--advertise-address"] != "127.0.0.1" {
		t.Errorf("%v %v", f, err)
	}
	h, p := urlHostPort("https://127.0.0.1:2379,https://10.0.0.1:2379")
	if h != "127.0.0.1" || p != 2379 {
		t.Errorf("%s %d", h, p)
	}
}

// TestRestartAPIServerCheckNotMade: a served certificate that cannot be
// checked at all (the host forbids forwarding and has no openssl) is
// reported as not checked, and the restart still succeeds.
func TestRestartAPIServerCheckNotMade(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	k := startFakeKubelet(t, h, false)
	tg := h.target()
	ctx := testCtx(t)
	if _, err := newStep(t, "renew_certs", "config: "+filepath.Join(h.root, "cfg/renew.yaml")).Apply(ctx, tg); err != nil {
		t.Fatal(err)
	}
	h.noForward.Store(true)
	h.hook = func(cmd string) ([]byte, error, bool) {
		if strings.Contains(cmd, "openssl s_client") {
			return nil, &hostexec.ExitError{Status: 127, Stderr: "openssl is not installed on the host"}, true
		}
		return nil, nil, false
	}
	starts := k.starts.Load()
	r, err := newStep(t, "restart_apiserver", fastRestart+"serve_check: ssh").Apply(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if k.starts.Load() != starts+1 || !r.Changed {
		t.Errorf("restarts %d, changed %v", k.starts.Load()-starts, r.Changed)
	}
	want := "served certificate on " + k.addr + " not checked: no way from the host"
	if !strings.Contains(strings.Join(r.Details, "\n"), want) {
		t.Errorf("details %q, want %q", r.Details, want)
	}
}
