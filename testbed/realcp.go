package testbed

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The real control plane (Options.Real).
const (
	// EtcdVersion is the etcd the testbed builds: the one kubeadm v1.34
	// deploys (constants.DefaultEtcdVersion "3.6.5-0").
	EtcdVersion = "v3.6.5"
	// EtcdClientPort and EtcdPeerPort are etcd's ports on every real host.
	EtcdClientPort, EtcdPeerPort = 2379, 2380
	// ControllerManagerPort and SchedulerPort are the secure ports of
	// kube-controller-manager and kube-scheduler (Options.Controllers); as
	// kubeadm configures them they listen on 127.0.0.1 only, with a
	// certificate they make themselves at start.
	ControllerManagerPort, SchedulerPort = 10257, 10259
	// APIServerStartDelayFile, inside a host, holds a delay (for example
	// "15s", anything sleep(1) accepts) that the apiserver waits before it
	// starts; read at each start. The stand-in reads the same file.
	APIServerStartDelayFile = "/var/lib/kplay-testbed/apiserver-start-delay"
	// SuperAdminConf is kubeadm's super-admin kubeconfig (group
	// system:masters), which needs no RBAC binding.
	SuperAdminConf = "/etc/kubernetes/super-admin.conf"
	// AdminConf is kubeadm's admin kubeconfig (group kubeadm:cluster-admins).
	AdminConf = "/etc/kubernetes/admin.conf"
	// realBinary is where, under /usr/local/bin, the real kube-apiserver is
	// installed; the kube-apiserver in PATH is a wrapper that honours
	// APIServerStartDelayFile and then execs it (so its comm stays
	// kube-apiserver).
	realBinary = "kplay-real/kube-apiserver"
	// realReadyTimeout bounds the wait for a fresh real control plane: three
	// etcds electing a leader and three apiservers bootstrapping RBAC on two
	// shared cores.
	realReadyTimeout = 5 * time.Minute
	// clusterAdminsBinding is the ClusterRoleBinding `kubeadm init` makes so
	// that admin.conf's group kubeadm:cluster-admins is cluster-admin.
	clusterAdminsBinding = "kubeadm:cluster-admins"
)

// apiserverWrapper is the kube-apiserver in PATH on real hosts: an optional
// start delay (the health-gate knob), then the real binary with the
// manifest's exact arguments, under the same pid.
const apiserverWrapper = `#!/bin/sh
# kplay testbed: the real kube-apiserver, after an optional start delay read
# from ` + APIServerStartDelayFile + ` (a sleep(1) duration).
d=` + APIServerStartDelayFile + `
if [ -s "$d" ]; then
  s=$(cat "$d")
  echo "kplay testbed: delaying kube-apiserver start by $s ($d)" >&2
  sleep "$s"
fi
exec /usr/local/bin/` + realBinary + ` "$@"
`

// etcdExtraArgs is the kubeadm ClusterConfiguration fragment that makes the
// hosts one etcd cluster: kubeadm's own etcd.local.extraArgs override its
// single-member --initial-cluster with every member, so the manifests stay
// kubeadm's.
func etcdExtraArgs(st *state) string {
	var members []string
	for _, h := range st.cps() {
		members = append(members, fmt.Sprintf("%s=https://%s:%d", h.Name, h.Address, EtcdPeerPort))
	}
	return `etcd:
  local:
    extraArgs:
    - name: initial-cluster
      value: ` + strings.Join(members, ",") + `
    - name: initial-cluster-state
      value: new
`
}

// writeRealKubeadmConfigs adds the etcd cluster to every host's kubeadm
// configuration.
func writeRealKubeadmConfigs(o *Options, st *state) error {
	for i := range st.Hosts {
		hs := &st.Hosts[i]
		if hs.Bastion {
			continue
		}
		p := filepath.Join(hs.Root, "etc/kubernetes/kubeadm-config.yaml")
		if err := os.WriteFile(p, []byte(kubeadmConfig(o, hs)+etcdExtraArgs(st)), 0o600); err != nil {
			return fmt.Errorf("host %s: kubeadm config: %w", hs.Name, err)
		}
	}
	return nil
}

// buildScript runs one of testbed/build's scripts and returns the path it
// prints (the cached binary).
func buildScript(ctx context.Context, mod, script string, env []string, args ...string) (string, error) {
	p := filepath.Join(mod, "testbed", "build", script)
	cmd := exec.CommandContext(ctx, "bash", append([]string{p}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", p, strings.Join(args, " "), err, lastLines(stderr.String(), 20))
	}
	return strings.TrimSpace(string(out)), nil
}

// installRealBinaries puts the real etcd and kube-apiserver (and with
// Controllers kube-controller-manager and kube-scheduler), built from the Go
// module proxy and cached unless Options or the environment name them, into
// the bed's bin directory, with the apiserver behind its wrapper.
func installRealBinaries(ctx context.Context, o *Options, mod, bin string) error {
	type want struct {
		path, env, script, as string
		env2                  []string
		args                  []string
	}
	k8s := []string{"K8S_VERSION=" + KubernetesVersion}
	// Two lanes at once: etcd, and the Kubernetes commands one after the
	// other (they share most packages, so the second reuses the first's
	// build cache instead of compiling the same packages in parallel). Each
	// build waits on its own lock if another process builds that binary.
	lanes := [][]want{
		{{o.Etcd, "KPLAY_ETCD", "etcd.sh", "etcd", []string{"ETCD_VERSION=" + EtcdVersion}, nil}},
		{{o.KubeAPIServer, "KPLAY_KUBE_APISERVER", "k8s.sh", realBinary, k8s, []string{"kube-apiserver"}}},
	}
	if o.Controllers {
		lanes[1] = append(lanes[1],
			want{"", "KPLAY_KUBE_CONTROLLER_MANAGER", "k8s.sh", "kube-controller-manager", k8s, []string{"kube-controller-manager"}},
			want{"", "KPLAY_KUBE_SCHEDULER", "k8s.sh", "kube-scheduler", k8s, []string{"kube-scheduler"}})
	}
	errs := make([]error, len(lanes))
	_ = parallel(ctx, len(lanes), len(lanes), func(ctx context.Context, i int) error {
		for _, w := range lanes[i] {
			p := w.path
			if p == "" {
				p = os.Getenv(w.env)
			}
			if p == "" {
				var err error
				if p, err = buildScript(ctx, mod, w.script, w.env2, w.args...); err != nil {
					errs[i] = fmt.Errorf("get %s: %w", w.as, err)
					return nil
				}
			}
			dst := filepath.Join(bin, w.as)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				errs[i] = fmt.Errorf("install %s: %w", w.as, err)
				return nil
			}
			if err := linkOrCopy(p, dst); err != nil {
				errs[i] = fmt.Errorf("install %s: %w", w.as, err)
				return nil
			}
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bin, "kube-apiserver"), []byte(apiserverWrapper), 0o755); err != nil {
		return fmt.Errorf("install kube-apiserver wrapper: %w", err)
	}
	return nil
}

// waitReal waits until every host's etcd is healthy and apiserver ready,
// then gives admin.conf's group its cluster-admin binding, as kubeadm init
// does.
func (b *Bed) waitReal(ctx context.Context, o *Options, t0 time.Time) error {
	waitCtx, cancel := context.WithTimeout(ctx, realReadyTimeout)
	defer cancel()
	err := parallel(waitCtx, len(b.Hosts), len(b.Hosts), func(ctx context.Context, i int) error {
		h := b.Hosts[i]
		etcd, err := h.EtcdClient()
		if err != nil {
			return err
		}
		defer etcd.CloseIdleConnections()
		api, err := h.KubeClient(SuperAdminConf)
		if err != nil {
			return err
		}
		defer api.CloseIdleConnections()
		var last error
		for {
			if last = etcd.Health(ctx); last == nil {
				if last = api.Readyz(ctx); last == nil && o.Controllers {
					for _, port := range []int{ControllerManagerPort, SchedulerPort} {
						if last = h.LocalHealthz(ctx, port); last != nil {
							break
						}
					}
				}
				if last == nil {
					return nil
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("host %s: control plane not ready: %v (kubelet log: %s; etcd log: %s; apiserver log: %s): %w",
					h.Name, last, tail(h.Path("/var/log/kubelet.log")), tail(h.Path("/var/log/pods/etcd.log")),
					tail(h.Path("/var/log/pods/kube-apiserver.log")), ctx.Err())
			case <-time.After(250 * time.Millisecond):
			}
		}
	})
	if err != nil {
		return err
	}
	o.logf("testbed %s: etcd healthy and apiservers ready after %v", b.st.Prefix, time.Since(t0).Round(time.Millisecond))
	api, err := b.Hosts[0].KubeClient(SuperAdminConf)
	if err != nil {
		return err
	}
	defer api.CloseIdleConnections()
	binding := map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1",
		"kind":       "ClusterRoleBinding",
		"metadata":   map[string]any{"name": clusterAdminsBinding},
		"roleRef":    map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
		"subjects":   []any{map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": clusterAdminsBinding}},
	}
	code, body, err := api.Do(ctx, http.MethodPost, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
	if err != nil {
		return fmt.Errorf("host %s: create ClusterRoleBinding %s: %w", b.Hosts[0].Name, clusterAdminsBinding, err)
	}
	if code != http.StatusCreated && code != http.StatusConflict {
		return fmt.Errorf("host %s: create ClusterRoleBinding %s: HTTP %d: %s", b.Hosts[0].Name, clusterAdminsBinding, code, body)
	}
	return nil
}

// KubeClient is an HTTP client for one apiserver, authenticated by a
// kubeconfig's client certificate and verifying the server against the
// kubeconfig's CA.
type KubeClient struct {
	// Server is the apiserver's URL (https://ADDRESS:6443).
	Server string
	http   *http.Client
}

// KubeClient returns a client for the host's own apiserver, authenticated
// with the client certificate of the kubeconfig at path inside the host
// (AdminConf, SuperAdminConf, ...), read now. Only tests use the key.
func (h *Host) KubeClient(kubeconfig string) (*KubeClient, error) {
	c, err := NewKubeClient(h.Path(kubeconfig), fmt.Sprintf("https://%s:%d", h.Address, APIServerPort))
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", h.Name, err)
	}
	return c, nil
}

// NewKubeClient reads a kubeconfig file (client-certificate-data,
// client-key-data and certificate-authority-data of its first user and
// cluster) and returns a client for server, or for the kubeconfig's own
// server if server is "".
func NewKubeClient(path, server string) (*KubeClient, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	var kc struct {
		Clusters []struct {
			Cluster struct {
				Server string `yaml:"server"`
				CA     string `yaml:"certificate-authority-data"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			User struct {
				Cert string `yaml:"client-certificate-data"`
				Key  string `yaml:"client-key-data"`
			} `yaml:"user"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	if len(kc.Clusters) == 0 || len(kc.Users) == 0 {
		return nil, fmt.Errorf("kubeconfig %s: no cluster or no user", path)
	}
	dec := func(what, s string) ([]byte, error) {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("kubeconfig %s: %s: missing or not base64", path, what)
		}
		return b, nil
	}
	caPEM, err := dec("certificate-authority-data", kc.Clusters[0].Cluster.CA)
	if err != nil {
		return nil, err
	}
	certPEM, err := dec("client-certificate-data", kc.Users[0].User.Cert)
	if err != nil {
		return nil, err
	}
	keyPEM, err := dec("client-key-data", kc.Users[0].User.Key)
	if err != nil {
		return nil, err
	}
	if server == "" {
		server = kc.Clusters[0].Cluster.Server
	}
	return newTLSClient(server, caPEM, certPEM, keyPEM)
}

// newTLSClient makes a client with a client certificate that trusts only
// caPEM. It keeps one connection alive per server: a TLS handshake for each
// of many probes a second would cost more CPU than the servers' answers on
// a small machine. A server that stops breaks the connection, and the next
// request dials anew.
func newTLSClient(server string, caPEM, certPEM, keyPEM []byte) (*KubeClient, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}},
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     30 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	}
	return &KubeClient{Server: strings.TrimRight(server, "/"), http: &http.Client{Transport: tr}}, nil
}

// CloseIdleConnections releases the client's connections.
func (c *KubeClient) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Do sends a request (body, if not nil, as JSON) with a 5 s timeout and
// returns the status code and up to 64 KiB of the body.
func (c *KubeClient) Do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, r)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, c.Server+path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return resp.StatusCode, b, fmt.Errorf("%s %s: read body: %w", method, c.Server+path, err)
	}
	return resp.StatusCode, b, nil
}

// Readyz returns nil if the apiserver answers 200 on /readyz.
func (c *KubeClient) Readyz(ctx context.Context) error {
	code, body, err := c.Do(ctx, http.MethodGet, "/readyz", nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		// The failing checks ("[-]etcd failed: reason withheld"), not the
		// passing ones.
		var failed []string
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "[-]") {
				failed = append(failed, l)
			}
		}
		if len(failed) == 0 {
			failed = []string{lastLines(string(body), 5)}
		}
		return fmt.Errorf("%s/readyz: HTTP %d: %s", c.Server, code, strings.Join(failed, "; "))
	}
	return nil
}

// Namespaces lists the namespaces' names (GET /api/v1/namespaces).
func (c *KubeClient) Namespaces(ctx context.Context) ([]string, error) {
	code, body, err := c.Do(ctx, http.MethodGet, "/api/v1/namespaces", nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s/api/v1/namespaces: HTTP %d: %s", c.Server, code, lastLines(string(body), 5))
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("%s/api/v1/namespaces: %w", c.Server, err)
	}
	var names []string
	for _, it := range list.Items {
		names = append(names, it.Metadata.Name)
	}
	return names, nil
}

// EtcdClient is an HTTPS client for one etcd member's client port,
// authenticated with kubeadm's etcd healthcheck-client certificate.
type EtcdClient struct {
	c *KubeClient
}

// EtcdClient returns a client for the host's etcd on port 2379, with the
// healthcheck-client certificate and etcd CA on the host's disk now.
func (h *Host) EtcdClient() (*EtcdClient, error) {
	read := func(p string) ([]byte, error) {
		b, err := os.ReadFile(h.Path(p))
		if err != nil {
			return nil, fmt.Errorf("host %s: etcd client: %w", h.Name, err)
		}
		return b, nil
	}
	ca, err := read("/etc/kubernetes/pki/etcd/ca.crt")
	if err != nil {
		return nil, err
	}
	crt, err := read("/etc/kubernetes/pki/etcd/healthcheck-client.crt")
	if err != nil {
		return nil, err
	}
	key, err := read("/etc/kubernetes/pki/etcd/healthcheck-client.key")
	if err != nil {
		return nil, err
	}
	c, err := newTLSClient(fmt.Sprintf("https://%s:%d", h.Address, EtcdClientPort), ca, crt, key)
	if err != nil {
		return nil, fmt.Errorf("host %s: etcd client: %w", h.Name, err)
	}
	return &EtcdClient{c: c}, nil
}

// CloseIdleConnections releases the client's connections.
func (e *EtcdClient) CloseIdleConnections() { e.c.CloseIdleConnections() }

// Health returns nil if the member answers {"health":"true"} on /health,
// which etcd gives only when the cluster has a leader and a quorum read
// succeeds (what `etcdctl endpoint health` checks).
func (e *EtcdClient) Health(ctx context.Context) error {
	code, body, err := e.c.Do(ctx, http.MethodGet, "/health", nil)
	if err != nil {
		return err
	}
	var h struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	if jerr := json.Unmarshal(body, &h); jerr != nil || code != http.StatusOK || h.Health != "true" {
		return fmt.Errorf("%s/health: HTTP %d: %s", e.c.Server, code, strings.TrimSpace(string(body)))
	}
	return nil
}

// Members returns the names of the cluster's members, from the member list
// the member serves on its gRPC gateway (POST /v3/cluster/member/list).
func (e *EtcdClient) Members(ctx context.Context) ([]string, error) {
	code, body, err := e.c.Do(ctx, http.MethodPost, "/v3/cluster/member/list", map[string]any{})
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s/v3/cluster/member/list: HTTP %d: %s", e.c.Server, code, strings.TrimSpace(string(body)))
	}
	var ms struct {
		Members []struct {
			Name string `json:"name"`
		} `json:"members"`
	}
	if err := json.Unmarshal(body, &ms); err != nil {
		return nil, fmt.Errorf("%s/v3/cluster/member/list: %w", e.c.Server, err)
	}
	var names []string
	for _, m := range ms.Members {
		names = append(names, m.Name)
	}
	return names, nil
}

// LocalHealthz asks https://127.0.0.1:PORT/healthz from inside the host (curl
// -k: controller-manager and scheduler serve a self-made certificate) and
// returns nil if it answers 200.
func (h *Host) LocalHealthz(ctx context.Context, port int) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	out, err := h.Exec(ctx, "curl", "-ksS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", u)
	if err != nil {
		return fmt.Errorf("host %s: %s: %w", h.Name, u, err)
	}
	if code := strings.TrimSpace(string(out)); code != "200" {
		return fmt.Errorf("host %s: %s: HTTP %s", h.Name, u, code)
	}
	return nil
}

// RSS returns the resident memory, in bytes, of every process of the host
// (its PID namespace), summed by command name: etcd, kube-apiserver, sshd,
// kplay-kubelet, kplay-hostinit, ...
func (h *Host) RSS() (map[string]int64, error) {
	pids, err := h.processes("")
	if err != nil {
		return nil, fmt.Errorf("host %s: rss: %w", h.Name, err)
	}
	out := map[string]int64{}
	for _, pid := range pids {
		comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if err != nil {
			continue
		}
		out[strings.TrimSpace(string(comm))] += vmRSS(pid)
	}
	return out, nil
}

// vmRSS returns a process's VmRSS in bytes, or 0 if it is gone.
func vmRSS(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// PodPID returns the controller-side pid of the host's process named comm
// (for example "etcd" or "kube-apiserver"), or 0 if none runs.
func (h *Host) PodPID(comm string) int {
	pids, err := h.processes(comm)
	if err != nil || len(pids) == 0 {
		return 0
	}
	return pids[0]
}
