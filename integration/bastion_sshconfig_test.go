package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/runner"
	"github.com/kplay/kplay/testbed"
)

// keyFingerprint is the SHA256 fingerprint of a key file, as sshd logs it.
func keyFingerprint(t *testing.T, key string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-l", "-E", "sha256", "-f", key).Output()
	must(t, err)
	return strings.Fields(string(out))[1]
}

// TestBastionSSHConfig: everything about the bastion comes from an
// OpenSSH client config that uses Match, tokens and several
// UserKnownHostsFiles, checked on real sshds. The bastion, named by
// `Match host` blocks' ProxyJump, has its own HostName, User (kplay),
// Port (2222) and IdentityFile (a key only the bastion's kplay accepts,
// its path built from %r, %h and %p); its host key is known only from its
// second UserKnownHostsFile. A `Match host` block for another name would
// break everything if it applied. New host keys are recorded in the first
// UserKnownHostsFile only. Then a bastion reached through another bastion
// (the hop's own ProxyJump) works too, and a Match line the parser would
// misread is refused (exit 2) before any host is contacted.
func TestBastionSSHConfig(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 2, Bastion: true})
	cps, bastion := b.Hosts, b.Bastion
	restartSSHD(t, bastion, "ListenAddress "+bastion.Address+":2222\n")
	dir := t.TempDir()
	bkey := keygen(t, dir, fmt.Sprintf("bastion_kplay@%s_2222", bastion.Address), "")
	authorize(t, bkey+".pub", bastion) // root's list; kplay's below
	pub, err := os.ReadFile(bkey + ".pub")
	must(t, err)
	f, err := os.OpenFile(bastion.Path("/etc/ssh/authorized_keys/kplay"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.Write(pub)
	must(t, err)
	must(t, f.Close())
	hostKey, err := os.ReadFile(b.KeyPath)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "id_root"), hostKey, 0o600))

	// known_hosts: the bastion only as [addr]:2222 in its second file; the
	// hosts' first file does not exist yet, their second lacks cp2.
	kh, err := os.ReadFile(b.KnownHostsPath)
	must(t, err)
	var bastionKH, hostsKH []string
	for _, l := range strings.Split(strings.TrimSpace(string(kh)), "\n") {
		switch {
		case strings.HasPrefix(l, bastion.Address+" "):
			bastionKH = append(bastionKH, "["+bastion.Address+"]:2222"+strings.TrimPrefix(l, bastion.Address))
		case !strings.HasPrefix(l, cps[1].Address+" "):
			hostsKH = append(hostsKH, l)
		}
	}
	bastionSecond := writeFile(t, "bastion_kh", strings.Join(bastionKH, "\n")+"\n")
	hostsSecond := writeFile(t, "hosts_kh", strings.Join(hostsKH, "\n")+"\n")
	hostsFirst := filepath.Join(dir, "new_kh")
	conf := fmt.Sprintf(`Host jump
  HostName %[1]s
  User kplay
  Port 2222
  IdentityFile %[2]s/bastion_%%r@%%h_%%p
  IdentitiesOnly yes
  UserKnownHostsFile %[2]s/bastion_first_kh %[3]s
Match host %[4]s.invalid
  Port 1
  ProxyJump none
Match host %[4]s
  ProxyJump jump
Match host %[5]s
  ProxyJump jump
Host * !jump
  IdentityFile %[2]s/id_%%r
  IdentitiesOnly yes
  UserKnownHostsFile %[6]s %[7]s
Match all
  ConnectTimeout 20
`, bastion.Address, dir, bastionSecond, cps[0].Address, cps[1].Address, hostsFirst, hostsSecond)
	cfg := writeFile(t, "ssh_config", conf)
	inv, err := runner.LoadInventory(writeFile(t, "inventory.yaml",
		fmt.Sprintf("hosts:\n  cp1: {address: %s}\n  cp2: {address: %s}\n", cps[0].Address, cps[1].Address)))
	must(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	on2222, asKplay := sshdLines(t, bastion, " port 2222"), sshdLines(t, bastion, "Accepted publickey for kplay")
	s, err := runner.NewSSH(&runner.Plan{Hosts: inv.Hosts}, runner.SSHOptions{ConfigFile: cfg, AcceptNew: true})
	must(t, err)
	conns, err := dialAll(ctx, t, s, inv, "cp1", "cp2")
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	must(t, s.Close())
	if err != nil {
		t.Fatalf("through the bastion of ssh_config: %v", err)
	}
	if n := sshdLines(t, bastion, " port 2222") - on2222; n != 1 {
		t.Errorf("%d connections to the bastion's port 2222, want 1", n)
	}
	if n := sshdLines(t, bastion, "Accepted publickey for kplay") - asKplay; n != 1 {
		t.Errorf("%d logins as kplay on the bastion, want 1", n)
	}
	if n := sshdLines(t, bastion, keyFingerprint(t, bkey)); n < 1 {
		t.Error("the bastion's own IdentityFile was not the key that logged in")
	}
	first, err := os.ReadFile(hostsFirst)
	must(t, err)
	if !strings.HasPrefix(string(first), cps[1].Address+" ") || strings.Count(string(first), "\n") != 1 {
		t.Errorf("first UserKnownHostsFile %q: want exactly cp2's new key", first)
	}
	if second, _ := os.ReadFile(hostsSecond); string(second) != strings.Join(hostsKH, "\n")+"\n" {
		t.Error("the second UserKnownHostsFile was written")
	}
	if _, err := os.Stat(filepath.Join(dir, "bastion_first_kh")); err == nil {
		t.Error("the bastion's key, known from its second file, was recorded again")
	}

	t.Run("bastion with its own ProxyJump", func(t *testing.T) {
		// cp1 through cp2, which is reached through the bastion.
		chain := strings.Replace(conf, "Match host "+cps[0].Address+"\n  ProxyJump jump\n",
			"Host "+cps[0].Address+"\n  ProxyJump inner\nHost inner\n  HostName "+cps[1].Address+"\n  ProxyJump jump\n", 1)
		s, err := runner.NewSSH(&runner.Plan{Hosts: inv.Hosts[:1]}, runner.SSHOptions{ConfigFile: writeFile(t, "ssh_config", chain)})
		must(t, err)
		defer s.Close()
		cp2From := sshdLines(t, cps[1], "Accepted publickey for root from "+b.BastionInner+" ")
		conns, err := dialAll(ctx, t, s, inv, "cp1")
		if err != nil {
			t.Fatalf("cp1 via inner via jump: %v", err)
		}
		conns[0].Close()
		if n := s.Bastions(); n != 2 {
			t.Errorf("%d bastion connections, want 2 (jump, then inner through it)", n)
		}
		if n := sshdLines(t, cps[1], "Accepted publickey for root from "+b.BastionInner+" ") - cp2From; n != 1 {
			t.Errorf("cp2 saw %d logins from the bastion, want 1 (as the inner hop)", n)
		}
	})

	t.Run("a ProxyCommand kplay would bypass", func(t *testing.T) {
		// Ignored, it would leave cp1 reached through the bastion instead of
		// through the command the file names: refused, naming file and line.
		bad := "Host " + cps[0].Address + "\n  ProxyCommand nc %h %p\n" + conf
		cfg := writeFile(t, "ssh_config", bad)
		invFile := writeFile(t, "inventory.yaml", fmt.Sprintf("hosts:\n  cp1: {address: %s}\n  cp2: {address: %s}\ngroups:\n  control_plane: [cp1, cp2]\n",
			cps[0].Address, cps[1].Address))
		before := sshdLines(t, bastion, "Connection from")
		r := run(t, []string{"SSH_AUTH_SOCK="}, "check", "-i", invFile, "-F", cfg, "--within", "1d")
		if want := fmt.Sprintf("%s:2: key \"ProxyCommand\":", cfg); r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("exit %d, stderr %q: want exit 2 and %q", r.code, r.stderr, want)
		}
		if n := sshdLines(t, bastion, "Connection from") - before; n != 0 {
			t.Errorf("%d connections to the bastion, want none: the file is refused before any host is contacted", n)
		}
	})

	t.Run("a Match line the parser would misread", func(t *testing.T) {
		// Read as one literal pattern "a,b", this block would apply to
		// nothing, and kplay would go on through the bastion.
		bad := conf + "Match host " + cps[0].Address + "," + cps[1].Address + "\n  Port 1\n"
		line := strings.Count(conf, "\n") + 1
		cfg := writeFile(t, "ssh_config", bad)
		invFile := writeFile(t, "inventory.yaml", fmt.Sprintf("hosts:\n  cp1: {address: %s}\n  cp2: {address: %s}\ngroups:\n  control_plane: [cp1, cp2]\n",
			cps[0].Address, cps[1].Address))
		before := sshdLines(t, bastion, "Connection from")
		r := run(t, []string{"SSH_AUTH_SOCK="}, "check", "-i", invFile, "-F", cfg, "--within", "1d")
		if want := fmt.Sprintf("%s:%d: key \"Match\":", cfg, line); r.code != 2 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "comma-separated") {
			t.Errorf("exit %d, stderr %q: want exit 2 and %q about a comma-separated pattern list", r.code, r.stderr, want)
		}
		if n := sshdLines(t, bastion, "Connection from") - before; n != 0 {
			t.Errorf("%d connections to the bastion, want none: the file is refused before any host is contacted", n)
		}
	})
}
