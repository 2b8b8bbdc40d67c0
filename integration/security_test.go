package integration

// Security on real test hosts (issue 4): host keys, injection through
// variables, secrets that must never leave a host or reach the output,
// become, and the modes of local files.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kplay/kplay/internal/hostexec"
	"github.com/kplay/kplay/internal/shellquote"
	"github.com/kplay/kplay/remote"
	"github.com/kplay/kplay/runner"
	"github.com/kplay/kplay/testbed"
)

// knownLines returns the known_hosts lines of bed b for address addr.
func knownLines(t *testing.T, b *testbed.Bed, addr string) []string {
	t.Helper()
	data, err := os.ReadFile(b.KnownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, addr+" ") {
			out = append(out, l)
		}
	}
	return out
}

// TestSecurityHostKeyTypes: a host offering ed25519 and ecdsa keys while
// known_hosts holds only one of them connects (the other type is not
// negotiated, so there is no false mismatch), and trust on first use never
// accepts a changed key of either type.
func TestSecurityHostKeyTypes(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	pb := writeFile(t, "pb.yaml", "hosts: all\nsteps:\n  - shell: touch /tmp/ran\n")

	// The premise: the host offers both types, known_hosts lists only ed25519.
	for _, typ := range []string{"ed25519", "ecdsa"} {
		out, err := exec.Command("ssh-keyscan", "-T", "5", "-t", typ, h.Address).Output()
		if err != nil || !strings.Contains(string(out), h.Address+" ") {
			t.Fatalf("%s does not offer an %s host key: %v %q", h.Name, typ, err, out)
		}
	}
	lines := knownLines(t, b, h.Address)
	if len(lines) != 1 || !strings.Contains(lines[0], " ssh-ed25519 ") {
		t.Fatalf("known_hosts for %s = %q; want only its ed25519 key", h.Address, lines)
	}
	// Without restricting the negotiated algorithms, an SSH client is
	// offered the ecdsa key and reports a mismatch (golang/go#29286).
	cb, err := knownhosts.New(b.KnownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	keyBytes, _ := os.ReadFile(b.KeyPath)
	signer, err := ssh.ParsePrivateKey(keyBytes)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ssh.Dial("tcp", h.Address+":22", &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: cb, Timeout: 5 * time.Second})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		t.Fatalf("a default client against this host: %v; want a false key mismatch (else this test proves nothing)", err)
	}

	t.Run("several key types, ed25519 known", func(t *testing.T) {
		if r := run(t, nil, "run", pb, "-i", inventory(t, b, "", "")); r.code != 0 {
			t.Errorf("exit %d, want 0", r.code)
		}
	})
	t.Run("several key types, only ecdsa known", func(t *testing.T) {
		pub, err := os.ReadFile(h.Path("/etc/ssh/ssh_host_ecdsa_key.pub"))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(pub))
		kh := writeFile(t, "known_hosts", h.Address+" "+f[0]+" "+f[1]+"\n")
		if r := run(t, nil, "run", pb, "-i", inventory(t, b, kh, "")); r.code != 0 {
			t.Errorf("exit %d, want 0", r.code)
		}
	})
	// A different key of the same type, and of the other type: both are
	// changed keys. TOFU must refuse them and leave known_hosts alone.
	for _, typ := range []string{"ed25519", "ecdsa"} {
		t.Run("tofu refuses a changed "+typ+" key", func(t *testing.T) {
			dir := t.TempDir()
			out, err := exec.Command("ssh-keygen", "-q", "-t", typ, "-N", "", "-f", filepath.Join(dir, "k")).CombinedOutput()
			if err != nil {
				t.Fatalf("ssh-keygen: %v %s", err, out)
			}
			pub, _ := os.ReadFile(filepath.Join(dir, "k.pub"))
			f := strings.Fields(string(pub))
			kh := writeFile(t, "known_hosts", h.Address+" "+f[0]+" "+f[1]+"\n")
			before, _ := os.ReadFile(kh)
			_ = os.Remove(h.Path("/tmp/ran"))
			r := run(t, nil, "run", pb, "-i", inventory(t, b, kh, ""), "--accept-new-host-keys")
			if r.code != 1 || !strings.Contains(r.stdout, "HOST KEY CHANGED") || !strings.Contains(r.stdout, "man-in-the-middle") {
				t.Errorf("exit %d; want 1 and a changed-key warning", r.code)
			}
			if after, _ := os.ReadFile(kh); !bytes.Equal(before, after) {
				t.Errorf("known_hosts was modified by TOFU on a changed key:\n%s", after)
			}
			if exists(h.Path("/tmp/ran")) {
				t.Error("a command ran on a host with a changed key")
			}
		})
	}
}

// FuzzQuoteOnHost: any byte string given as a variable reaches a real host
// byte for byte as exactly one argument, checked with printf '%s\0', as
// root and through sudo (become). One SSH connection per user serves
// every input. A NUL, which no command line can carry, is refused by
// variable expansion and by the transport.
func FuzzQuoteOnHost(f *testing.F) {
	b := testbed.Require(f, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	var clients []*remote.Client
	for _, u := range []struct {
		user   string
		become bool
	}{{"root", false}, {"kplay", true}} {
		c, err := remote.Dial(f.Context(), remote.Config{Name: h.Name, Address: h.Address, User: u.user, Become: u.become,
			KeyPath: b.KeyPath, KnownHosts: b.KnownHostsPath, ConnectTimeout: 10 * time.Second})
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { c.Close() })
		clients = append(clients, c)
	}
	for _, s := range []string{"", "a", "a b", "'", "''", `\`, `\'`, `"`, "$(touch /tmp/x)", "`id`", "'; id #", "\n", "a\nb",
		"\xff\xfe", "-n", "--", "*", "~", "$HOME", "${IFS}", "!", "\t", "\r\n", "a\x00b", "\x00", "{{ v }}", "%s", "\\0", "é", strings.Repeat("'", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 16<<10 {
			t.Skip("longer than a command line should be")
		}
		v := runner.NewVars(map[string]string{"v": s})
		cmd, err := v.Shell(`printf '%s\0' {{ v }} x{{ v }}`)
		if strings.IndexByte(s, 0) >= 0 {
			if err == nil {
				t.Fatalf("a variable with a NUL expanded to %q", cmd)
			}
			if _, err := clients[0].Run(t.Context(), "printf '%s\\0' "+shellquote.Quote(s)); !errors.Is(err, hostexec.ErrNUL) {
				t.Fatalf("the transport ran a command with a NUL: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("expanding %q: %v", s, err)
		}
		for _, c := range clients {
			out, err := c.Run(t.Context(), cmd)
			if strings.Contains(s, "PRIVATE KEY-----") {
				if !errors.Is(err, hostexec.ErrSecretPath) {
					t.Fatalf("output with a private key marker was not refused: %v", err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%q: %v", cmd, err)
			}
			if want := s + "\x00x" + s + "\x00"; string(out) != want {
				t.Fatalf("variable %q arrived as %q (command %q)", s, out, cmd)
			}
		}
	})
}

// TestSecurityInjection: --var values that would run commands if they were
// pasted into the shell unquoted arrive as data and never execute.
func TestSecurityInjection(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	inv := inventory(t, b, "", "")
	pb := writeFile(t, "pb.yaml", `
hosts: all
steps:
  - name: print
    shell:
      cmd: printf '%s\0' {{ v }} > /tmp/out
      undo: rm -f /tmp/out {{ v }}
  - name: in a path
    shell: {cmd: "touch /tmp/d/{{ v | quote }} || true", unless: "test -e /tmp/d/{{ v }}"}
`)
	values := []string{
		"$(touch /tmp/pwned1)",
		"`touch /tmp/pwned2`",
		"`id`",
		"'; touch /tmp/pwned3 #",
		"\"; touch /tmp/pwned4; \"",
		"a\ntouch /tmp/pwned5",
		"a;touch /tmp/pwned6",
		"a|touch /tmp/pwned7",
		"a&&touch /tmp/pwned8",
		"$(id>/tmp/pwned9)",
		"\\'$(touch /tmp/pwned10)\\'",
		"{{ host.name | raw }}",
	}
	hostSh(t, h, "mkdir -p /tmp/d")
	for _, v := range values {
		t.Run(fmt.Sprintf("%q", v), func(t *testing.T) {
			r := run(t, nil, "run", pb, "-i", inv, "--var", "v="+v)
			if r.code != 0 {
				t.Fatalf("exit %d", r.code)
			}
			got, err := os.ReadFile(h.Path("/tmp/out"))
			if err != nil || string(got) != v+"\x00" {
				t.Errorf("the value arrived as %q (%v), want %q", got, err, v+"\x00")
			}
			if out := hostSh(t, h, "ls /tmp | grep pwned; ls /root | grep pwned; true"); out != "" {
				t.Errorf("a --var value executed on the host: %s", out)
			}
			_ = os.RemoveAll(h.Path("/tmp/d"))
			hostSh(t, h, "mkdir -p /tmp/d")
		})
	}
	// A NUL cannot reach a command line: an inventory variable holding one
	// is a config error (exit 2), found before any host is contacted.
	t.Run("NUL", func(t *testing.T) {
		logBefore, _ := os.ReadFile(h.Path(testbed.SSHDLog))
		src, _ := os.ReadFile(inv)
		nulInv := writeFile(t, "inventory.yaml", string(src)+"vars:\n  v: \"a\\0b\"\n")
		r := run(t, nil, "run", pb, "-i", nulInv)
		if r.code != 2 || !strings.Contains(r.stderr, `variable "v" holds a NUL byte`) || !strings.Contains(r.stderr, "pb.yaml:") {
			t.Errorf("exit %d, stderr %q; want 2 and a positioned NUL error", r.code, r.stderr)
		}
		logAfter, _ := os.ReadFile(h.Path(testbed.SSHDLog))
		if strings.Count(string(logAfter), "Connection from") != strings.Count(string(logBefore), "Connection from") {
			t.Error("a host was contacted")
		}
	})
}

// canaryKey is a PEM private key whose body is a canary.
func canaryKey(canary string) string {
	return "-----BEGIN PRIVATE KEY-----\n" + canary + "\n-----END PRIVATE KEY-----\n"
}

// TestSecurityTransportRefusesKeys: over a real connection, a *.key path is
// never read, and a private key is withheld whether a command prints it to
// stdout or stderr, or reads it through an innocent-looking name.
func TestSecurityTransportRefusesKeys(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	const canary = "KPLAYCANARYTRANSPORT0123456789"
	if err := os.WriteFile(h.Path("/root/canary.key"), []byte(canaryKey(canary)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("canary.key", h.Path("/root/notes.txt")); err != nil {
		t.Fatal(err)
	}
	c, err := remote.Dial(t.Context(), remote.Config{Name: h.Name, Address: h.Address, KeyPath: b.KeyPath, KnownHosts: b.KnownHostsPath})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range []string{"/root/canary.key", "/etc/ssh/ssh_host_ed25519_key", "/root/.ssh/id_ed25519"} {
		if b, err := c.ReadFile(t.Context(), p); !errors.Is(err, hostexec.ErrSecretPath) || b != nil {
			t.Errorf("ReadFile(%s) = %q, %v; want ErrSecretPath", p, b, err)
		}
	}
	for _, cmd := range []string{
		"cat /root/canary.key",
		"cat /root/notes.txt",
		"cat /etc/ssh/ssh_host_ed25519_key",
		"cat /root/canary.key >&2; exit 3",
		"cat /root/canary.key; exit 3",
		"cat /root/canary.key; sleep 30",
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		out, err := c.Run(ctx, cmd)
		cancel()
		if err == nil {
			t.Errorf("%q succeeded", cmd)
		}
		if bytes.Contains(out, []byte(canary)) || strings.Contains(fmt.Sprint(err), canary) || bytes.Contains(out, []byte("PRIVATE KEY")) {
			t.Errorf("%q leaked the key: out %q, err %v", cmd, out, err)
		}
	}
}

// shadowSetPassword gives user on h the password pw (crypt SHA-512),
// writing the host's /etc/shadow in place.
func shadowSetPassword(t *testing.T, h *testbed.Host, user, pw string) {
	t.Helper()
	hash, err := exec.Command("openssl", "passwd", "-6", "-salt", "kplaycanary", pw).Output()
	if err != nil {
		t.Fatal(err)
	}
	// The host's own copy (Host.Path maps only the host's directories, and
	// /etc/shadow would be the controller's).
	p := filepath.Join(h.Root, "etc", "shadow")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	found := false
	for i, l := range lines {
		f := strings.Split(l, ":")
		if len(f) > 2 && f[0] == user {
			f[1] = strings.TrimSpace(string(hash))
			lines[i] = strings.Join(f, ":")
			found = true
		}
	}
	if !found {
		t.Fatalf("no %s in %s", user, p)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(strings.Join(lines, "\n")); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestSecurityBecome: sudo without NOPASSWD fails fast and clearly; a
// password from KPLAY_BECOME_PASSWORD is fed to sudo on stdin and appears
// in no process's command line or environment on the host; with NOPASSWD
// the password is not fed to the command.
func TestSecurityBecome(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	const pw = "KPLAYCANARYBECOME-0f9e8d7c"
	shadowSetPassword(t, h, "kplaypw", pw)
	pb := writeFile(t, "pb.yaml", "hosts: all\nsteps:\n  - shell: id -u > /tmp/uid; cat > /tmp/stdin; sleep 3\n")
	invFor := func(user string) string {
		src, err := os.ReadFile(inventory(t, b, "", ""))
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, "inventory.yaml", strings.Replace(string(src), "user: root", "user: "+user+"\n  become: true", 1))
	}

	t.Run("no password", func(t *testing.T) {
		r := run(t, nil, "run", pb, "-i", invFor("kplaypw"))
		if r.code != 1 || !strings.Contains(r.stdout, "sudo needs a password on this host: set KPLAY_BECOME_PASSWORD or allow NOPASSWD") {
			t.Errorf("exit %d; want 1 and a clear become message", r.code)
		}
		if r.took > 5*time.Second {
			t.Errorf("took %s, want within 5s", r.took)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		wrong := "KPLAYCANARYWRONG-31415926"
		r := run(t, []string{"KPLAY_BECOME_PASSWORD=" + wrong}, "run", pb, "-i", invFor("kplaypw"), "--output", "json")
		if r.code != 1 || !strings.Contains(r.stdout, "sudo refused the password") {
			t.Errorf("exit %d; want 1 and a refused password", r.code)
		}
		if strings.Contains(r.stdout+r.stderr, wrong) {
			t.Error("the wrong password was printed")
		}
		if r.took > 10*time.Second {
			t.Errorf("took %s", r.took)
		}
	})
	t.Run("password on stdin only", func(t *testing.T) {
		_ = os.Remove(h.Path("/tmp/uid"))
		bg := startKplay(t, []string{"KPLAY_BECOME_PASSWORD=" + pw}, "run", pb, "-i", invFor("kplaypw"))
		scans := 0
		for {
			// Every process's argv and environment on the host, while kplay
			// runs, including sudo and the step's own processes.
			out, _ := h.Exec(t.Context(), "sh", "-c", "cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null; true")
			scans++
			if bytes.Contains(out, []byte(pw)) {
				t.Errorf("the become password is visible in /proc on the host")
				break
			}
			select {
			case <-bg.done:
			default:
				time.Sleep(20 * time.Millisecond)
				continue
			}
			break
		}
		r := bg.wait(t, 30*time.Second)
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		if uid, _ := os.ReadFile(h.Path("/tmp/uid")); string(uid) != "0\n" {
			t.Errorf("the step ran as uid %q, want 0", uid)
		}
		if in, _ := os.ReadFile(h.Path("/tmp/stdin")); len(in) != 0 {
			t.Errorf("the command's stdin held %q", in)
		}
		if strings.Contains(r.stdout+r.stderr, pw) {
			t.Error("the password was printed")
		}
		if scans < 10 {
			t.Errorf("only %d scans of /proc during the run", scans)
		}
		t.Logf("%d scans of /proc/*/cmdline and environ during the run", scans)
	})
	t.Run("NOPASSWD with a password set", func(t *testing.T) {
		_ = os.Remove(h.Path("/tmp/stdin"))
		r := run(t, []string{"KPLAY_BECOME_PASSWORD=" + pw}, "run", pb, "-i", invFor("kplay"))
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		if in, err := os.ReadFile(h.Path("/tmp/stdin")); err != nil || len(in) != 0 {
			t.Errorf("the command's stdin held %q (%v): the password must not reach it", in, err)
		}
	})
}

// scanFiles returns every regular file under root that holds one of the
// needles, except the paths in allowed.
func scanFiles(t *testing.T, root string, needles []string, allowed map[string]bool) []string {
	t.Helper()
	var hits []string
	_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() || allowed[p] {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, n := range needles {
			if bytes.Contains(data, []byte(n)) {
				hits = append(hits, p+" holds "+n[:min(12, len(n))]+"…")
			}
		}
		return nil
	})
	return hits
}

// pemBody returns the base64 body lines of PEM data: each one is a canary.
func pemBody(data []byte) []string {
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); len(l) >= 16 && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return out
}

// TestSecuritySecrets: canaries in a private key on the host, in the SSH
// client key, in admin.conf's client-key-data and in a become password.
// After successful and failing runs in text and JSON (kplay has no
// verbosity flag), none appears in stdout, stderr, the JSON report, any
// file kplay wrote on the controller except ~/.kube/config and its
// kplay-backup (whose purpose is the credential), or the host's logs.
func TestSecuritySecrets(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1, Kube: true, CertValidity: 48 * time.Hour, KeyAlgorithm: "ECDSA-P256"})
	h := b.Hosts[0]
	home := t.TempDir()
	env := []string{"HOME=" + home}
	const keyCanary = "KPLAYCANARYHOSTKEY-5a4b3c2d1e"
	const pwCanary = "KPLAYCANARYPASSWORD-77aa88bb"
	if err := os.WriteFile(h.Path("/etc/kubernetes/pki/canary.key"), []byte(canaryKey(keyCanary)), 0o600); err != nil {
		t.Fatal(err)
	}
	shadowSetPassword(t, h, "kplaypw", pwCanary)
	sshKey, _ := os.ReadFile(b.KeyPath)
	_, _, adminKey := kubeconfigCreds(t, h.Path("/etc/kubernetes/admin.conf"))
	adminKeyB64 := base64.StdEncoding.EncodeToString(adminKey)
	needles := append([]string{keyCanary, pwCanary, adminKeyB64, adminKeyB64[60:120]}, pemBody(sshKey)...)
	needles = append(needles, pemBody(adminKey)...)
	if len(needles) < 6 {
		t.Fatalf("too few canaries: %d", len(needles))
	}
	var outputs []result
	check := func(r result) { outputs = append(outputs, r) }

	src, _ := os.ReadFile(b.InventoryPath)
	becomeInv := writeFile(t, "become.yaml", strings.Replace(string(src), "user: root", "user: kplaypw\n  become: true", 1))
	leak := writeFile(t, "leak.yaml", `
hosts: all
steps:
  - name: read a key
    shell: cat /etc/kubernetes/pki/canary.key
  - name: never
    shell: true
`)
	leakErr := writeFile(t, "leak-stderr.yaml", "hosts: all\nsteps:\n  - shell: cat /etc/kubernetes/pki/canary.key >&2; exit 1\n")
	// Prints the step's environment and every process's argv on the host.
	leakSudo := writeFile(t, "leak-sudo.yaml", "hosts: all\nsteps:\n  - shell: tr '\\0' '\\n' < /proc/self/environ; ps -eo args >&2; exit 1\n")
	for _, out := range []string{"text", "json"} {
		// Successful runs: the renewal (with fetch_admin_conf) and check.
		r := run(t, env, "run", "../playbooks/renew.yaml", "-i", b.InventoryPath, "--output", out)
		if r.code != 0 {
			t.Fatalf("renew (%s): exit %d", out, r.code)
		}
		check(r)
		check(run(t, env, "check", "-i", b.InventoryPath, "--output", out))
		check(run(t, append(env, "KPLAY_BECOME_PASSWORD="+pwCanary), "run", "../playbooks/check.yaml", "-i", becomeInv, "--output", out))
		// Failing runs.
		for _, pb := range []string{leak, leakErr, leakSudo} {
			r := run(t, append(env, "KPLAY_BECOME_PASSWORD="+pwCanary), "run", pb, "-i", becomeInv, "--output", out)
			if r.code != 1 {
				t.Errorf("%s: exit %d, want 1", pb, r.code)
			}
			check(r)
		}
		r = run(t, append(env, "KPLAY_BECOME_PASSWORD="+pwCanary+"x"), "run", "../playbooks/check.yaml", "-i", becomeInv, "--output", out)
		if r.code != 1 {
			t.Errorf("wrong password: exit %d, want 1", r.code)
		}
		check(r)
	}
	// A failing fetch: admin.conf's client key replaced by a canary key
	// that does not parse.
	conf := h.Path("/etc/kubernetes/admin.conf")
	orig, _ := os.ReadFile(conf)
	if _, _, k := kubeconfigCreds(t, conf); !bytes.Equal(k, adminKey) {
		// The renewal gave admin.conf a new key: it is a canary too.
		adminKeyB64 = base64.StdEncoding.EncodeToString(k)
		needles = append(needles, adminKeyB64, adminKeyB64[60:120])
		needles = append(needles, pemBody(k)...)
	}
	badKey := base64.StdEncoding.EncodeToString([]byte("-----BEGIN EC PRIVATE KEY-----\nKPLAYCANARYBADCLIENTKEY00\n-----END EC PRIVATE KEY-----\n"))
	bad := strings.Replace(string(orig), adminKeyB64, badKey, 1)
	if bad == string(orig) {
		t.Fatal("could not plant the canary in admin.conf")
	}
	needles = append(needles, "KPLAYCANARYBADCLIENTKEY00", badKey)
	if err := os.WriteFile(conf, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	fetch := writeFile(t, "fetch.yaml", "hosts: all\nsteps:\n  - fetch_admin_conf: {dest: ~/.kube/other-config}\n")
	for _, out := range []string{"text", "json"} {
		r := run(t, env, "run", fetch, "-i", b.InventoryPath, "--output", out)
		if r.code != 1 {
			t.Errorf("fetch of a broken admin.conf: exit %d, want 1", r.code)
		}
		check(r)
	}
	if err := os.WriteFile(conf, orig, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, r := range outputs {
		for _, n := range needles {
			if strings.Contains(r.stdout, n) || strings.Contains(r.stderr, n) {
				t.Errorf("a secret (%s…) appeared in kplay's output", n[:12])
			}
		}
	}
	// Files on the controller: the test's home (kubeconfig, backups) and
	// temp dirs. ~/.kube/config and its backups are the fetched credential.
	allowed := map[string]bool{}
	matches, _ := filepath.Glob(filepath.Join(home, ".kube", "config*"))
	for _, m := range matches {
		allowed[m] = true
	}
	if len(matches) == 0 {
		t.Fatal("no ~/.kube/config was written: the successful runs did not fetch")
	}
	for _, hit := range scanFiles(t, home, needles, allowed) {
		t.Errorf("secret on the controller: %s", hit)
	}
	for _, hit := range scanFiles(t, h.Path("/var/log"), needles, nil) {
		t.Errorf("secret in a host log: %s", hit)
	}
	// No *.key was read off the host: the host key canary is in none of
	// the files this test and kplay wrote on the controller.
	for _, hit := range scanFiles(t, filepath.Dir(home), []string{keyCanary}, nil) {
		t.Errorf("the host's private key reached the controller: %s", hit)
	}
}

// TestSecurityLocalFilesUmask000: under umask 000, ~/.kube/config and its
// kplay backup are 0600 in a 0700 directory, written by temp file and
// rename (a new inode each time, no temp file left), and a known_hosts
// created by --accept-new-host-keys is 0600 in a 0700 directory.
func TestSecurityLocalFilesUmask000(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1, Kube: true, KeyAlgorithm: "ECDSA-P256"})
	home := t.TempDir()
	kh := filepath.Join(home, ".ssh", "known_hosts")
	inv := inventory(t, b, kh, "")
	pb := writeFile(t, "fetch.yaml", "hosts: all\nsteps:\n  - fetch_admin_conf: {dest: ~/.kube/config}\n")
	umask := func() result {
		t.Helper()
		cmd := exec.Command("sh", "-c", `umask 000; exec "$0" "$@"`, kplay.path, "run", pb, "-i", inv, "--accept-new-host-keys")
		cmd.Env = append(os.Environ(), "HOME="+home)
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		t.Logf("umask 000 kplay: %v\n%s%s", err, so.String(), se.String())
		return result{stdout: so.String(), stderr: se.String(), code: cmd.ProcessState.ExitCode()}
	}
	mode := func(p string) fs.FileMode {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	inode := func(p string) uint64 {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Ino
	}
	if r := umask(); r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	cfg := filepath.Join(home, ".kube", "config")
	for p, want := range map[string]fs.FileMode{cfg: 0o600, filepath.Dir(cfg): 0o700, kh: 0o600, filepath.Dir(kh): 0o700} {
		if got := mode(p); got != want {
			t.Errorf("%s mode %04o, want %04o", p, got, want)
		}
	}
	// The user clears the current context: the second run has something to
	// merge (with nothing to change it would write nothing at all).
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cleared := regexp.MustCompile(`(?m)^current-context: .*$`).ReplaceAll(data, []byte(`current-context: ""`))
	if bytes.Equal(cleared, data) {
		t.Fatalf("no current-context in %s", cfg)
	}
	if err := os.WriteFile(cfg, cleared, 0o600); err != nil {
		t.Fatal(err)
	}
	first := inode(cfg)
	if r := umask(); r.code != 0 {
		t.Fatalf("second run: exit %d", r.code)
	}
	if inode(cfg) == first {
		t.Error("~/.kube/config was rewritten in place, not replaced by rename")
	}
	backups, _ := filepath.Glob(cfg + ".kplay-backup-*")
	if len(backups) != 1 {
		t.Fatalf("backups %v, want one", backups)
	}
	if got := mode(backups[0]); got != 0o600 {
		t.Errorf("backup mode %04o, want 0600", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(cfg))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".kplay-") && !strings.Contains(e.Name(), "kplay-backup") {
			t.Errorf("temp file left: %s", e.Name())
		}
	}
}
