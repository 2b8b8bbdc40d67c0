package testbed

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestOctetOfInterface(t *testing.T) {
	for name, want := range map[string]int{"kpbr7": 7, "kpv200h12": 200, "kpv5h1": 5, "kpbr0": 0, "kpbr255": 0, "eth0": 0, "kpvxh1": 0} {
		got, ok := octetOfInterface(name)
		if ok != (want != 0) || got != want {
			t.Errorf("octetOfInterface(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
	for octet := minOctet; octet <= maxOctet; octet++ {
		for _, n := range []string{bridgeName(octet), vethName(octet, MaxHosts)} {
			if len(n) > 15 {
				t.Fatalf("interface name %q longer than 15 bytes", n)
			}
			if got, ok := octetOfInterface(n); !ok || got != octet {
				t.Fatalf("octetOfInterface(%q) = %d, %v", n, got, ok)
			}
		}
	}
}

func TestHostPath(t *testing.T) {
	h := &Host{Root: "/bed/hosts/cp1"}
	for in, want := range map[string]string{
		"/etc/kubernetes/pki/ca.crt": "/bed/hosts/cp1/etc/kubernetes/pki/ca.crt",
		"/var/lib/kubelet":           "/bed/hosts/cp1/var/lib/kubelet",
		"/tmp":                       "/bed/hosts/cp1/tmp",
		"/root/../tmp/x":             "/bed/hosts/cp1/tmp/x",
		"/var/log/sshd.log":          "/bed/hosts/cp1/var/log/sshd.log",
		"/usr/bin/kubeadm":           "/usr/bin/kubeadm",
		"/etc/sshd":                  "/etc/sshd",
	} {
		if got := h.Path(in); got != want {
			t.Errorf("Path(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestInventory(t *testing.T) {
	st := &state{Prefix: "p", Subnet: "10.213.9.0/24", KeyPath: "/d/id_ed25519", KnownHostsPath: "/d ir/known_hosts",
		Hosts: []hostState{{Name: "cp1", Address: "10.213.9.11"}, {Name: "cp2", Address: "10.213.9.12"}}}
	var inv struct {
		Defaults map[string]any
		Hosts    map[string]struct{ Address string }
		Groups   map[string][]string
	}
	data := inventory(st)
	if err := yaml.Unmarshal(data, &inv); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if inv.Defaults["known_hosts"] != "/d ir/known_hosts" || inv.Defaults["key"] != "/d/id_ed25519" ||
		inv.Hosts["cp2"].Address != "10.213.9.12" || strings.Join(inv.Groups["control_plane"], ",") != "cp1,cp2" {
		t.Errorf("inventory decodes to %+v:\n%s", inv, data)
	}
	if !strings.Contains(string(data), "  cp1: {address: 10.213.9.11}\n") {
		t.Errorf("inventory not in the documented shape:\n%s", data)
	}
}

func TestSSHKeysReadableByOpenSSH(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("SKIP: ssh-keygen not found: install openssh-client (make deps)")
	}
	dir := t.TempDir()
	for _, typ := range []string{"ed25519", "ecdsa"} {
		k, err := newSSHKey(typ, "c@h")
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, typ)
		if err := k.write(p); err != nil {
			t.Fatal(err)
		}
		// ssh-keygen -y derives the public key from the private one.
		out, err := exec.Command("ssh-keygen", "-y", "-f", p).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: ssh-keygen -y: %v: %s", typ, err, out)
		}
		pub, _ := os.ReadFile(p + ".pub")
		if f := strings.Fields(string(out)); len(f) < 2 || !strings.HasPrefix(string(pub), f[0]+" "+f[1]+" ") {
			t.Errorf("%s: derived %q, wrote %q", typ, out, pub)
		}
		if line := k.knownHostsLine("10.0.0.1"); !strings.HasPrefix(line, "10.0.0.1 "+k.typ+" ") {
			t.Errorf("known_hosts line %q", line)
		}
	}
}

func TestHostAddress(t *testing.T) {
	for i, want := range map[int]string{1: "10.213.7.11", 240: "10.213.7.250", 241: "10.214.7.11", MaxHosts: "10.214.7.250"} {
		if got := hostAddress(7, i); got != want {
			t.Errorf("hostAddress(7, %d) = %s, want %s", i, got, want)
		}
	}
	if unusedHost <= firstHost+hostsPerSubnet-1 {
		t.Errorf("unused address .%d collides with the hosts .%d-.%d", unusedHost, firstHost, firstHost+hostsPerSubnet-1)
	}
}
