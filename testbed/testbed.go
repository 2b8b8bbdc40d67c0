// Package testbed runs real local test hosts for kplay's integration tests,
// `make demo` and `make bench`.
//
// Each host is a Linux network namespace with its own address on a per-bed
// bridge, its own PID, UTS, IPC and mount namespaces, and Debian's real
// OpenSSH sshd. PID 1 of a host is kplay-hostinit (testbed/hostinit), which
// reaps zombies and starts sshd (and, on kube hosts, the kubelet stand-in).
// A host has its own /etc/ssh, /etc/kubernetes, /etc/passwd, /etc/group,
// /etc/shadow, /etc/hosts and /etc/sudoers.d, and its own /root, /tmp,
// /var/lib, /var/log, /run and /home: bind mounts of directories under
// Host.Root on the controller, so tests can inspect a host's files without
// entering it (see Host.Path). /etc/netns/NETNS links to the same /etc
// entries, so `ip netns exec NETNS` sees them too. The bed's bin directory
// is every host's /usr/local/bin.
//
// With Options.Kube every host is also a kubeadm control-plane node (shared
// CAs, as in HA) whose kube-apiserver stand-in (testbed/standin/apiserver)
// is run by a kubelet stand-in (testbed/standin/kubelet) from kubeadm's
// static pod manifest.
//
// Everything needs root. Beds started at the same time (for example by the
// parallel packages of `go test ./...`) never collide: each takes a /24 under
// 10.213.0.0/16 by holding a lock file in /run/kplay-testbed, and names its
// interfaces after it. The same lock owns the matching /24 under
// 10.214.0.0/16, where a bed of more than hostsPerSubnet hosts (make bench's
// N=300) puts the rest of its hosts, on the same bridge (see MaxHosts).
// Hosts have no default route, so nothing they do can leave the bed's
// subnets.
package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// MaxHosts is the largest number of hosts one bed can have: .11 to .250 of
// the bed's 10.213.X.0/24 (hostsPerSubnet), then .11 to .250 of 10.214.X.0/24.
// Both /24s are on the bed's one bridge, where the controller has an address
// in each (.1); each host has a /24 address and no other route, so a host of
// the second /24 (cp241 and up) reaches the controller but not cp1..cp240.
// Beds of up to 240 hosts are exactly as before: one /24.
const MaxHosts = 2 * hostsPerSubnet

// hostsPerSubnet is how many hosts one /24 of a bed holds (.11 to .250).
const hostsPerSubnet = 240

const (
	// firstHost is the last octet of the first host's address.
	firstHost = 11
	// unusedHost is the last octet of the address UnusedAddress returns.
	unusedHost = 254
	// defaultKubeletPeriod is the kubelet stand-in's default manifest poll period.
	defaultKubeletPeriod = 2 * time.Second
	// readyTimeout bounds each wait for hosts to come up during Start.
	readyTimeout = 90 * time.Second
)

// Options says what bed Start builds.
type Options struct {
	// Prefix names the bed's network namespaces (PREFIX-cp1, ...) and, if Dir
	// is empty, its temporary directory. Default: "kplay<pid>-<octet>", unique
	// among running beds. Letters, digits, '-' and '_' only, at most 40 bytes.
	Prefix string
	// Hosts is the number of hosts, 1 to MaxHosts. They are named cp1..cpN.
	Hosts int
	// Kube makes every host a kubeadm control-plane node sharing one set of CAs,
	// with a kubelet stand-in running a kube-apiserver stand-in on :6443.
	Kube bool
	// Real (implies Kube) runs a real control plane instead of the apiserver
	// stand-in: every host runs real etcd and a real kube-apiserver, both
	// built from the Go module proxy (testbed/build) and started by the
	// kubelet stand-in from kubeadm's own static pod manifests; the etcds form
	// one cluster naming every host. Start returns once every etcd is healthy
	// and every apiserver ready, with admin.conf's group bound to
	// cluster-admin as kubeadm init binds it.
	Real bool
	// Controllers (implies Real) also runs kube-controller-manager and
	// kube-scheduler from kubeadm's manifests (`control-plane all`); their
	// binaries come from testbed/build/k8s.sh, or $KPLAY_KUBE_CONTROLLER_MANAGER
	// and $KPLAY_KUBE_SCHEDULER.
	Controllers bool
	// Etcd and KubeAPIServer are the binaries Real uses. Default:
	// $KPLAY_ETCD and $KPLAY_KUBE_APISERVER, else what testbed/build/etcd.sh
	// and k8s.sh print (they build and cache them).
	Etcd, KubeAPIServer string
	// CertValidity is kubeadm's certificateValidityPeriod for leaf
	// certificates (e.g. 48h); 0 means kubeadm's default (one year).
	CertValidity time.Duration
	// KeyAlgorithm is kubeadm's encryptionAlgorithm for the keys it makes:
	// "" means kubeadm's default, RSA-2048; "ECDSA-P256" makes kube beds
	// start faster (no RSA key generation).
	KeyAlgorithm string
	// KubeletPeriod is the kubelet stand-in's manifest poll period; default 2s
	// (a real kubelet rereads manifests about every 20s).
	KubeletPeriod time.Duration
	// Dir is the controller-side state directory. Default: a new temporary
	// directory that Close removes. A given Dir is kept by Close (logs,
	// certificates), except bed.json.
	Dir string
	// Detach leaves the hosts running after this process exits (for the
	// kplay-testbed CLI); without it, the hosts are killed if this process
	// dies. Close (or Load and Close in another process) tears a bed down.
	Detach bool
	// ModuleDir is the root of the kplay module, used to build the stand-ins
	// and kubeadm for Kube beds. Default: found from the working directory or
	// this package's source path.
	ModuleDir string
	// Kubeadm is the kubeadm binary to use. Default: $KPLAY_KUBEADM, else the
	// binary that testbed/build/k8s.sh prints (it builds and caches it).
	Kubeadm string
	// Bastion adds a jump host named bastion in its own network namespace
	// with two interfaces: eth0 on the hosts' bridge and eth1 on a
	// point-to-point link to the controller (Bed.Bastion.Address). Once
	// Start returns, the controller has no address on the bridge, so it
	// reaches the hosts only through the bastion's sshd: SSH, 6443 and 2379
	// are all closed to it (the bed's own KubeClient and EtcdClient no
	// longer reach them either; use Host.Exec). Bed.SSHConfigPath is an
	// OpenSSH client config that reaches every host through it.
	Bastion bool
	// Logf, if set, receives progress messages (timings of Start's phases).
	Logf func(format string, args ...any)
}

// Bed is a running set of test hosts.
type Bed struct {
	// Dir is the controller-side state directory.
	Dir string
	// Hosts are the bed's hosts, cp1..cpN.
	Hosts []*Host
	// KeyPath is an ed25519 private key (0600) authorised for root, kplay and
	// kplaypw on every host.
	KeyPath string
	// KnownHostsPath is a plain known_hosts file with every host's ed25519
	// host key (the hosts also offer an ecdsa key, which it does not list).
	KnownHostsPath string
	// InventoryPath is a kplay inventory for the bed.
	InventoryPath string
	// Subnet is the bed's network, 10.213.X.0/24 (hosts cp241 and up of a
	// bed of more than 240 are on 10.214.X.0/24, on the same bridge).
	Subnet string
	// Gateway is the controller's address on the bed's bridge (10.213.X.1).
	Gateway string
	// Bridge is the name of the bed's bridge on the controller.
	Bridge string
	// Bastion is the jump host of a bed started with Options.Bastion, else
	// nil. Its Address is on its link to the controller; it is not in Hosts
	// or the inventory.
	Bastion *Host
	// BastionInner is the bastion's address on the hosts' network: where
	// the hosts see its connections come from. "" without a Bastion.
	BastionInner string
	// SSHConfigPath is, with a Bastion, an OpenSSH client config: Host
	// bastion, every host through ProxyJump bastion, and the bed's key and
	// known_hosts (which lists the bastion's key too). Else "".
	SSHConfigPath string

	st       state
	lock     *os.File
	spawner  *spawner
	procs    map[string]*hostProc
	mu       sync.Mutex
	closed   bool
	closeErr error
}

// Host is one test host.
type Host struct {
	// Name is the host's inventory name and hostname (cp1, cp2, ...).
	Name string
	// Address is the host's IPv4 address; sshd listens on port 22 there.
	Address string
	// Netns is the host's network namespace (see `ip netns list`).
	Netns string
	// Root is the controller-side directory holding the host's etc/ssh,
	// etc/kubernetes, root/, tmp/, var/lib/, var/log/, run/ and home/.
	Root string

	veth      string
	initPID   int
	initStart uint64
}

// hostProc is a host's init process as started by this process.
type hostProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Path maps an absolute path inside the host (/etc/kubernetes/pki/ca.crt,
// /var/lib/kubelet, /root/x, /tmp/x, /var/log/sshd.log, ...) to the
// controller-side path of the same file. Paths outside the host's own
// directories (e.g. /usr/bin) are returned unchanged: they are the
// controller's, shared by every host.
func (h *Host) Path(p string) string {
	p = filepath.Clean("/" + p)
	for _, d := range hostDirs() {
		if p == d.inHost || strings.HasPrefix(p, d.inHost+"/") {
			return filepath.Join(h.Root, d.onController, strings.TrimPrefix(p, d.inHost))
		}
	}
	return p
}

// hostDir is a directory a host has its own copy of.
type hostDir struct {
	inHost       string
	onController string // relative to Host.Root
	mode         os.FileMode
	viaEtcNetns  bool // also linked from /etc/netns/NETNS for `ip netns exec`
}

// hostDirs returns the directories every host has its own copy of.
func hostDirs() []hostDir {
	return []hostDir{
		{"/etc/ssh", "etc/ssh", 0o755, true},
		{"/etc/kubernetes", "etc/kubernetes", 0o755, true},
		{"/root", "root", 0o700, false},
		{"/tmp", "tmp", os.ModeSticky | 0o777, false},
		{"/var/lib", "var/lib", 0o755, false},
		{"/var/log", "var/log", 0o755, false},
		{"/run", "run", 0o755, false},
		{"/home", "home", 0o755, false},
	}
}

// etcFiles returns the single files under /etc that every host has its own
// copy of (the controller's, plus the test users in passwd, group and shadow,
// and the bed's hosts in hosts).
func etcFiles() []string { return []string{"passwd", "group", "shadow", "hosts"} }

// validPrefix reports whether p is a usable name prefix.
func validPrefix(p string) bool {
	if p == "" || len(p) > 40 {
		return false
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// UnusedAddress returns an address in the bed's subnet where nothing answers
// (connections to it fail after ARP times out, about 3 s).
func (b *Bed) UnusedAddress() string {
	return fmt.Sprintf("10.213.%d.%d", b.st.Octet, unusedHost)
}

// Host returns the host with the given name, or nil.
func (b *Bed) Host(name string) *Host {
	for _, h := range b.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Close kills every process of every host and removes the bed's namespaces,
// bridge, veths, /etc/netns entries, lock and state (and Dir, if Start made
// it). It is idempotent and safe to call from several goroutines.
func (b *Bed) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.closeErr
	}
	b.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := teardown(ctx, &b.st, b.procs, b.lock)
	if b.spawner != nil {
		b.spawner.stop()
		b.spawner = nil
	}
	if b.lock != nil {
		if cerr := b.lock.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("release subnet lock: %w", cerr))
		}
		b.lock = nil
	}
	if err != nil {
		b.closeErr = fmt.Errorf("testbed %s: close: %w", b.st.Prefix, err)
	}
	return b.closeErr
}

// logf forwards to Options.Logf if set.
func (o *Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}
