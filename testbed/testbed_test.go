package testbed_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/testbed"
)

// sshRun runs a command on a host with the system ssh client, trusting only
// the bed's known_hosts.
func sshRun(ctx context.Context, b *testbed.Bed, user, addr, command string) (string, error) {
	cmd := exec.CommandContext(ctx, "ssh", "-F", "/dev/null", "-i", b.KeyPath,
		"-o", "UserKnownHostsFile="+b.KnownHostsPath, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
		user+"@"+addr, command)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// needSSH skips (or, in CI, fails) a test without the ssh client.
func needSSH(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ssh"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ssh client not found")
		}
		t.Skip("SKIP: ssh client not found: install openssh-client (make deps)")
	}
}

// leftovers returns what of a closed bed is still around.
func leftovers(t *testing.T, b *testbed.Bed) []string {
	t.Helper()
	var left []string
	if _, err := net.InterfaceByName(b.Bridge); err == nil {
		left = append(left, "bridge "+b.Bridge)
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, h := range b.Hosts {
		if strings.Contains(string(out), h.Netns) {
			left = append(left, "netns "+h.Netns)
		}
		if _, err := os.Lstat(filepath.Join("/etc/netns", h.Netns)); err == nil {
			left = append(left, "/etc/netns/"+h.Netns)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", h.InitPID())); err == nil {
			left = append(left, fmt.Sprintf("process %d (init of %s)", h.InitPID(), h.Name))
		}
	}
	return left
}

func TestPlainHosts(t *testing.T) {
	needSSH(t)
	b := testbed.Require(t, testbed.Options{Hosts: 3})
	ctx := t.Context()

	if len(b.Hosts) != 3 {
		t.Fatalf("got %d hosts, want 3", len(b.Hosts))
	}
	fi, err := os.Stat(b.KeyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key %s: mode %v, err %v; want 0600", b.KeyPath, fi.Mode(), err)
	}

	t.Run("ssh", func(t *testing.T) {
		for _, h := range b.Hosts {
			out, err := sshRun(ctx, b, "root", h.Address, "hostname")
			if err != nil || out != h.Name {
				t.Errorf("ssh %s hostname = %q, %v; want %q", h.Address, out, err, h.Name)
			}
		}
		// Each host has its own, empty /root, not the controller's.
		out, err := sshRun(ctx, b, "root", b.Hosts[0].Address, `echo "$HOME"; ls -A /root`)
		if err != nil || out != "/root" {
			t.Errorf("own /root: got %q, %v; want just /root", out, err)
		}
		log, err := os.ReadFile(b.Hosts[0].Path(testbed.SSHDLog))
		if err != nil || !strings.Contains(string(log), "Accepted publickey for root from "+b.Gateway) {
			t.Errorf("sshd log %s lacks the authentication: %v\n%s", testbed.SSHDLog, err, log)
		}
	})

	t.Run("inventory", func(t *testing.T) {
		var inv struct {
			Defaults map[string]any            `yaml:"defaults"`
			Hosts    map[string]map[string]any `yaml:"hosts"`
			Groups   map[string][]string       `yaml:"groups"`
		}
		data, err := os.ReadFile(b.InventoryPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &inv); err != nil {
			t.Fatalf("inventory: %v\n%s", err, data)
		}
		d := inv.Defaults
		if d["user"] != "root" || d["port"] != 22 || d["key"] != b.KeyPath ||
			d["known_hosts"] != b.KnownHostsPath || d["connect_timeout"] != "5s" {
			t.Errorf("inventory defaults = %v", d)
		}
		for _, h := range b.Hosts {
			if inv.Hosts[h.Name]["address"] != h.Address {
				t.Errorf("inventory host %s = %v, want address %s", h.Name, inv.Hosts[h.Name], h.Address)
			}
		}
		if got := strings.Join(inv.Groups["control_plane"], ","); got != "cp1,cp2,cp3" {
			t.Errorf("control_plane group = %s", got)
		}
	})

	t.Run("isolation", func(t *testing.T) {
		h1, h2 := b.Hosts[0], b.Hosts[1]
		if _, err := h1.Exec(ctx, "sh", "-c", "echo one > /tmp/marker"); err != nil {
			t.Fatal(err)
		}
		if data, err := os.ReadFile(h1.Path("/tmp/marker")); err != nil || string(data) != "one\n" {
			t.Errorf("controller side of cp1:/tmp/marker = %q, %v", data, err)
		}
		if out, err := h2.Exec(ctx, "ls", "-A", "/tmp"); err != nil || len(out) != 0 {
			t.Errorf("cp2 /tmp = %q, %v; want empty", out, err)
		}
		// Own PID namespaces: PID 1 is the host's init, and the namespaces differ.
		nsOf := func(h *testbed.Host) string {
			out, err := h.Exec(ctx, "readlink", "/proc/self/ns/pid")
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(out))
		}
		self, _ := os.Readlink("/proc/self/ns/pid")
		if n1, n2 := nsOf(h1), nsOf(h2); n1 == n2 || n1 == self {
			t.Errorf("pid namespaces: cp1 %s, cp2 %s, controller %s", n1, n2, self)
		}
		out, err := h1.Exec(ctx, "cat", "/proc/1/comm")
		if err != nil || strings.TrimSpace(string(out)) != "kplay-hostinit" {
			t.Errorf("cp1 PID 1 = %q, %v", out, err)
		}
		if out, err := h2.Exec(ctx, "hostname"); err != nil || strings.TrimSpace(string(out)) != "cp2" {
			t.Errorf("cp2 hostname = %q, %v", out, err)
		}
		// Processes of one host are invisible in another.
		out, err = h2.Exec(ctx, "sh", "-c", "ls /proc | grep -c '^[0-9]'")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		fmt.Sscan(string(out), &n)
		if n > 10 {
			t.Errorf("cp2 sees %d processes; want only its own few", n)
		}
	})

	t.Run("reaps zombies", func(t *testing.T) {
		h := b.Hosts[2]
		// The orphaned sleep is reparented to init, which must reap it.
		if _, err := h.Exec(ctx, "sh", "-c", "sleep 0.2 >/dev/null 2>&1 &"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(600 * time.Millisecond)
		out, err := h.Exec(ctx, "sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == \"Z\"'")
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("zombies on %s: %q, %v", h.Name, out, err)
		}
	})

	t.Run("non-root user", func(t *testing.T) {
		h := b.Hosts[1]
		out, err := sshRun(ctx, b, "kplay", h.Address, "id -un")
		if err != nil || out != "kplay" {
			t.Fatalf("ssh kplay@%s id -un = %q, %v", h.Address, out, err)
		}
		if _, err := exec.LookPath("sudo"); err != nil {
			t.Skip("SKIP: sudo is not installed, so become cannot be tested: install sudo (make deps)")
		}
		if out, err := sshRun(ctx, b, "kplay", h.Address, "sudo -n id -u"); err != nil || out != "0" {
			t.Errorf("kplay: sudo -n id -u = %q, %v", out, err)
		}
		if out, err := sshRun(ctx, b, "kplaypw", h.Address, "sudo -n true"); err == nil {
			t.Errorf("kplaypw: sudo -n worked without a password: %q", out)
		}
		if out, err := sshRun(ctx, b, "kplaypw", h.Address, "echo kplay | sudo -S -p '' id -u"); err != nil || out != "0" {
			t.Errorf("kplaypw: sudo -S id -u = %q, %v", out, err)
		}
	})

	t.Run("kill and start sshd", func(t *testing.T) {
		h := b.Hosts[2]
		if err := h.KillSSHD(ctx); err != nil {
			t.Fatal(err)
		}
		if out, err := sshRun(ctx, b, "root", h.Address, "true"); err == nil || !strings.Contains(out, "refused") {
			t.Errorf("ssh after KillSSHD: %q, %v; want connection refused", out, err)
		}
		if out, err := h.Exec(ctx, "hostname"); err != nil || strings.TrimSpace(string(out)) != h.Name {
			t.Errorf("host died with its sshd: %q, %v", out, err)
		}
		if err := h.StartSSHD(ctx); err != nil {
			t.Fatal(err)
		}
		if out, err := sshRun(ctx, b, "root", h.Address, "hostname"); err != nil || out != h.Name {
			t.Errorf("ssh after StartSSHD = %q, %v", out, err)
		}
	})

	t.Run("unused address", func(t *testing.T) {
		addr := b.UnusedAddress()
		if !strings.HasPrefix(addr, strings.TrimSuffix(b.Subnet, "0/24")) {
			t.Errorf("UnusedAddress %s not in %s", addr, b.Subnet)
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "22"), 500*time.Millisecond)
		if err == nil {
			c.Close()
			t.Errorf("something answers on %s", addr)
		}
	})

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if left := leftovers(t, b); len(left) > 0 {
		t.Errorf("left behind after Close: %v", left)
	}
	if _, err := os.Stat(b.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bed directory %s still exists: %v", b.Dir, err)
	}
}

// servedCert returns the certificate the apiserver on addr serves, verified
// against pool.
func servedCert(t *testing.T, pool *x509.CertPool, addr string) *x509.Certificate {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", net.JoinHostPort(addr, "6443"),
		&tls.Config{RootCAs: pool, ServerName: addr})
	if err != nil {
		t.Fatalf("TLS to %s:6443: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// readCert parses the first certificate in a PEM file.
func readCert(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(data)
	if blk == nil {
		t.Fatalf("%s: no PEM", p)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return c
}

// get fetches an apiserver URL, optionally with a client certificate.
func get(pool *x509.CertPool, url string, client []tls.Certificate) (int, string, error) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: client}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 3 * time.Second}).Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestKubeHosts(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 3, Kube: true, CertValidity: 48 * time.Hour})
	ctx := t.Context()
	ca := readCert(t, b.Hosts[0].Path("/etc/kubernetes/pki/ca.crt"))
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	t.Run("certificates", func(t *testing.T) {
		for _, h := range b.Hosts {
			for _, f := range []string{"ca.crt", "ca.key", "front-proxy-ca.crt", "etcd/ca.crt", "sa.key"} {
				a, _ := os.ReadFile(b.Hosts[0].Path("/etc/kubernetes/pki/" + f))
				c, err := os.ReadFile(h.Path("/etc/kubernetes/pki/" + f))
				if err != nil || string(a) != string(c) {
					t.Errorf("%s: %s differs from cp1's (shared CA set): %v", h.Name, f, err)
				}
			}
			if _, err := os.Stat(h.Path(testbed.KubeadmConfigPath)); err != nil {
				t.Errorf("%s: %v", h.Name, err)
			}
			crt := readCert(t, h.Path("/etc/kubernetes/pki/apiserver.crt"))
			if left := time.Until(crt.NotAfter); left < 47*time.Hour || left > 48*time.Hour+time.Minute {
				t.Errorf("%s: apiserver.crt expires in %v, want ~48h", h.Name, left)
			}
			kc := readCert(t, h.Path(testbed.KubeletClientCertPath))
			if kc.Subject.CommonName != "system:node:"+h.Name {
				t.Errorf("%s: kubelet client CN %q", h.Name, kc.Subject.CommonName)
			}
			if _, err := kc.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("%s: kubelet client certificate: %v", h.Name, err)
			}
			if left := time.Until(kc.NotAfter); left < 360*24*time.Hour {
				t.Errorf("%s: kubelet client certificate expires in %v, want ~1y", h.Name, left)
			}
		}
		out, err := b.Hosts[1].Exec(ctx, "kubeadm", "certs", "check-expiration")
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^apiserver\s+.*UTC\s+4[78]h\s+ca\s+no`).Match(out) {
			t.Errorf("check-expiration shows no ~48h apiserver certificate:\n%s", out)
		}
	})

	t.Run("apiserver", func(t *testing.T) {
		for _, h := range b.Hosts {
			served := servedCert(t, pool, h.Address)
			onDisk := readCert(t, h.Path("/etc/kubernetes/pki/apiserver.crt"))
			if !served.Equal(onDisk) {
				t.Errorf("%s serves serial %v, its apiserver.crt has %v", h.Name, served.SerialNumber, onDisk.SerialNumber)
			}
			code, body, err := get(pool, "https://"+h.Address+":6443/livez", nil)
			if err != nil || code != 200 || body != "ok" {
				t.Errorf("%s /livez = %d %q, %v", h.Name, code, body, err)
			}
			if code, _, err := get(pool, "https://"+h.Address+":6443/api", nil); err != nil || code != 401 {
				t.Errorf("%s /api without client cert = %d, %v; want 401", h.Name, code, err)
			}
			client, err := tls.LoadX509KeyPair(h.Path("/etc/kubernetes/pki/apiserver-kubelet-client.crt"),
				h.Path("/etc/kubernetes/pki/apiserver-kubelet-client.key"))
			if err != nil {
				t.Fatal(err)
			}
			code, body, err = get(pool, "https://"+h.Address+":6443/api", []tls.Certificate{client})
			var v struct {
				Kind     string
				Versions []string
			}
			if err != nil || code != 200 || json.Unmarshal([]byte(body), &v) != nil || v.Kind != "APIVersions" {
				t.Errorf("%s /api with client cert = %d %q, %v", h.Name, code, body, err)
			}
		}
	})

	t.Run("renew and restart", func(t *testing.T) {
		h := b.Hosts[0]
		old := servedCert(t, pool, h.Address)
		if _, err := h.Exec(ctx, "kubeadm", "certs", "renew", "apiserver", "--config", testbed.KubeadmConfigPath); err != nil {
			t.Fatal(err)
		}
		renewed := readCert(t, h.Path("/etc/kubernetes/pki/apiserver.crt"))
		if renewed.Equal(old) {
			t.Fatal("kubeadm certs renew did not change apiserver.crt")
		}
		if left := time.Until(renewed.NotAfter); left < 47*time.Hour || left > 48*time.Hour+time.Minute {
			t.Errorf("renewed apiserver.crt expires in %v, want ~48h (config kept)", left)
		}
		if !servedCert(t, pool, h.Address).Equal(old) {
			t.Error("apiserver picked up the renewed certificate without a restart")
		}
		// Restart it the static-pod way: move the manifest out and back.
		manifest := "/etc/kubernetes/manifests/kube-apiserver.yaml"
		if _, err := h.Exec(ctx, "mv", manifest, "/etc/kubernetes/kube-apiserver.yaml.moved"); err != nil {
			t.Fatal(err)
		}
		live := func() bool {
			code, _, err := get(pool, "https://"+h.Address+":6443/livez", nil)
			return err == nil && code == 200
		}
		// No poke: the kubelet stand-in notices at its next poll (2s).
		waitFor(t, "apiserver to stop", 10*time.Second, func() bool { return !live() })
		if _, err := h.Exec(ctx, "mv", "/etc/kubernetes/kube-apiserver.yaml.moved", manifest); err != nil {
			t.Fatal(err)
		}
		if err := h.KubeletSync(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "apiserver to come back", 10*time.Second, live)
		if !servedCert(t, pool, h.Address).Equal(renewed) {
			t.Error("restarted apiserver does not serve the renewed certificate")
		}
	})

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, b); len(left) > 0 {
		t.Errorf("left behind after Close: %v", left)
	}
}

func TestParallelBeds(t *testing.T) {
	if reason := testbed.Missing(testbed.Options{}); reason != "" && os.Getenv("CI") != "true" {
		t.Skip("SKIP: cannot run test hosts: " + reason + "; run as root after make deps (sudo go test ./testbed)")
	}
	ctx := t.Context()
	beds := make([]*testbed.Bed, 2)
	errs := make([]error, 2)
	done := make(chan int)
	for i := range beds {
		go func() {
			beds[i], errs[i] = testbed.Start(ctx, testbed.Options{Hosts: 2})
			done <- i
		}()
	}
	<-done
	<-done
	for i, b := range beds {
		if errs[i] != nil {
			t.Fatalf("bed %d: %v", i, errs[i])
		}
		t.Cleanup(func() { b.Close() })
	}
	if beds[0].Subnet == beds[1].Subnet || beds[0].Bridge == beds[1].Bridge || beds[0].Hosts[0].Netns == beds[1].Hosts[0].Netns {
		t.Fatalf("beds collide: %s %s %s / %s %s %s", beds[0].Subnet, beds[0].Bridge, beds[0].Hosts[0].Netns,
			beds[1].Subnet, beds[1].Bridge, beds[1].Hosts[0].Netns)
	}
	for _, b := range beds {
		for _, h := range b.Hosts {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Address, "22"), 2*time.Second)
			if err != nil {
				t.Errorf("%s %s: %v", b.Subnet, h.Name, err)
				continue
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil || !strings.HasPrefix(line, "SSH-2.0-") {
				t.Errorf("%s %s: banner %q, %v", b.Subnet, h.Name, line, err)
			}
		}
	}
}

// TestDetached starts a bed as the CLI does and tears it down through Load,
// as `kplay-testbed down` does.
func TestDetached(t *testing.T) {
	if reason := testbed.Missing(testbed.Options{}); reason != "" && os.Getenv("CI") != "true" {
		t.Skip("SKIP: cannot run test hosts: " + reason + "; run as root after make deps (sudo go test ./testbed)")
	}
	ctx := t.Context()
	dir := t.TempDir()
	b, err := testbed.Start(ctx, testbed.Options{Hosts: 2, Dir: dir, Detach: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	// A detached bed is live: CleanStale must leave it alone.
	if err := testbed.CleanStale(ctx); err != nil {
		t.Fatal(err)
	}
	loaded, err := testbed.Load(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := loaded.Hosts[1].Exec(ctx, "hostname"); err != nil || strings.TrimSpace(string(out)) != "cp2" {
		t.Fatalf("loaded bed: cp2 hostname = %q, %v", out, err)
	}
	if err := loaded.Close(); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, b); len(left) > 0 {
		t.Errorf("left behind after Close: %v", left)
	}
	if _, err := os.Stat(filepath.Join(dir, "inventory.yaml")); err != nil {
		t.Errorf("Close removed a given Dir's files: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bed.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bed.json still there after Close: %v", err)
	}
}

// TestCrashCleanup kills a process that runs a bed and checks that its hosts
// die with it and that CleanStale removes what is left.
func TestCrashCleanup(t *testing.T) {
	if os.Getenv("KPLAY_TESTBED_CRASH_HELPER") != "" {
		b, err := testbed.Start(context.Background(), testbed.Options{Hosts: 2, Dir: os.Getenv("KPLAY_TESTBED_CRASH_HELPER")})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ready", b.Subnet)
		select {} // until killed
	}
	if reason := testbed.Missing(testbed.Options{}); reason != "" && os.Getenv("CI") != "true" {
		t.Skip("SKIP: cannot run test hosts: " + reason + "; run as root after make deps (sudo go test ./testbed)")
	}
	ctx := t.Context()
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashCleanup$")
	cmd.Env = append(os.Environ(), "KPLAY_TESTBED_CRASH_HELPER="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper: %q, %v", line, err)
	}
	b, err := testbed.Load(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	// The hosts die with their owner...
	waitFor(t, "hosts to die with their owner", 10*time.Second, func() bool {
		for _, h := range b.Hosts {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", h.InitPID())); err == nil {
				return false
			}
		}
		return true
	})
	// ...but namespaces and the bridge outlive it, until CleanStale (which a
	// test package running in parallel may call first).
	if len(leftovers(t, b)) == 0 {
		t.Log("the crashed bed was already cleaned up by a concurrent CleanStale")
	}
	if err := testbed.CleanStale(ctx); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, b); len(left) > 0 {
		t.Errorf("left behind after CleanStale: %v", left)
	}
}

// BenchmarkStart measures Start and Close of plain beds:
// go test -run '^$' -bench Start ./testbed/
func BenchmarkStart(b *testing.B) {
	if reason := testbed.Missing(testbed.Options{}); reason != "" {
		b.Skip("SKIP: cannot run test hosts: " + reason + "; run as root after make deps")
	}
	for _, n := range []int{3, 100} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			var closing time.Duration
			for b.Loop() {
				bed, err := testbed.Start(b.Context(), testbed.Options{Hosts: n})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				t0 := time.Now()
				if err := bed.Close(); err != nil {
					b.Fatal(err)
				}
				closing += time.Since(t0)
				b.StartTimer()
			}
			b.ReportMetric(closing.Seconds()/float64(b.N), "close-s/op")
		})
	}
}

// TestBastionBed: with Options.Bastion the controller has no route to the
// hosts; real OpenSSH reaches them through the bed's ssh_config (ProxyJump
// bastion), the bastion's sshd logs the hops' forwarding, the hosts' sshd
// sees the bastion's bridge address, and Close leaves nothing behind.
func TestBastionBed(t *testing.T) {
	needSSH(t)
	if reason := testbed.Missing(testbed.Options{}); reason != "" && os.Getenv("CI") != "true" {
		t.Skip("SKIP: cannot run test hosts: " + reason + "; run as root after make deps (sudo go test ./testbed)")
	}
	b, err := testbed.Start(t.Context(), testbed.Options{Hosts: 2, Bastion: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
		if left := leftovers(t, b); len(left) > 0 {
			t.Errorf("left behind after Close: %v", left)
		}
		if _, err := net.InterfaceByName(fmt.Sprintf("kpv%shj", strings.Split(b.Subnet, ".")[2])); err == nil {
			t.Error("the bastion's link to the controller is left behind")
		}
		if out, _ := exec.Command("ip", "route", "show", "type", "unreachable").Output(); strings.Contains(string(out), strings.TrimSuffix(b.Subnet, "0/24")) {
			t.Errorf("the unreachable route for %s is left behind:\n%s", b.Subnet, out)
		}
	}()
	if b.Bastion == nil || len(b.Hosts) != 2 || b.SSHConfigPath == "" {
		t.Fatalf("bastion %v, %d hosts, ssh config %q; want a bastion, 2 hosts and a config", b.Bastion, len(b.Hosts), b.SSHConfigPath)
	}
	inv, err := os.ReadFile(b.InventoryPath)
	if err != nil || strings.Contains(string(inv), "bastion") {
		t.Errorf("the inventory lists the bastion (or is unreadable: %v):\n%s", err, inv)
	}
	for _, h := range b.Hosts {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Address, "22"), 2*time.Second); err == nil {
			c.Close()
			t.Errorf("%s: reachable from the controller without the bastion", h.Name)
		}
		cmd := exec.CommandContext(t.Context(), "ssh", "-F", b.SSHConfigPath, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
			"-o", "GlobalKnownHostsFile=/dev/null", h.Address, "hostname")
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != h.Name {
			t.Errorf("ssh -F %s %s hostname = %q, %v; want %s", b.SSHConfigPath, h.Address, out, err, h.Name)
		}
		log, err := os.ReadFile(h.Path(testbed.SSHDLog))
		if err != nil || !strings.Contains(string(log), "Accepted publickey for root from "+b.BastionInner+" ") {
			t.Errorf("%s: sshd log lacks a login from the bastion's bridge address: %v\n%s", h.Name, err, log)
		}
	}
	log, err := os.ReadFile(b.Bastion.Path(testbed.SSHDLog))
	if err != nil || strings.Count(string(log), "Accepted publickey for root from 10.215.") != 2 {
		t.Errorf("bastion sshd log: want 2 logins from the controller's link: %v\n%s", err, log)
	}
}
