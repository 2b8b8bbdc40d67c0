package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kplay/kplay/remote"
	"github.com/kplay/kplay/testbed"
)

// Op is the measured cost of one transport operation on an idle host.
type Op struct {
	Name string
	// Wall is the median wall time of one operation.
	Wall time.Duration
	// HostCPU and CtlCPU are the mean CPU per operation inside the host
	// and on the controller.
	HostCPU, CtlCPU time.Duration
}

// transportCosts measures, one operation at a time on one host of the bed,
// what kplay's transport and the OpenSSH floor pay per connection and per
// command: the per-step costs behind the totals.
func transportCosts(ctx context.Context, e *env, reps int) ([]Op, error) {
	h := e.bed.Hosts[0]
	var ops []Op
	measure := func(name string, f func() (time.Duration, error)) error {
		if _, err := f(); err != nil { // warm caches
			return fmt.Errorf("%s: %w", name, err)
		}
		var walls []time.Duration
		var ctl time.Duration
		before, err := hostsCPU(ctx, e.bed, true)
		if err != nil {
			return err
		}
		self0 := selfCPU()
		for range reps {
			t := time.Now()
			childCPU, err := f()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			walls = append(walls, time.Since(t))
			ctl += childCPU
		}
		ctl += selfCPU() - self0
		after, err := hostsCPU(ctx, e.bed, true)
		if err != nil {
			return err
		}
		ops = append(ops, Op{Name: name, Wall: median(walls),
			HostCPU: (after - before) / time.Duration(reps), CtlCPU: ctl / time.Duration(reps)})
		return nil
	}
	cfg := remote.Config{Name: h.Name, Address: h.Address, KeyPath: e.bed.KeyPath, KnownHosts: e.bed.KnownHostsPath}
	err := measure("kplay: connect (TCP, SSH handshake, public-key authentication)", func() (time.Duration, error) {
		c, err := remote.Dial(ctx, cfg)
		if err != nil {
			return 0, err
		}
		return 0, c.Close()
	})
	if err != nil {
		return nil, err
	}
	variants, err := handshakeVariants(e)
	if err != nil {
		return nil, err
	}
	for _, v := range variants {
		err := measure("Go SSH handshake+auth: "+v.name, func() (time.Duration, error) {
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(h.Address, "22"), 30*time.Second)
			if err != nil {
				return 0, err
			}
			cc, chans, reqs, err := ssh.NewClientConn(conn, net.JoinHostPort(h.Address, "22"), v.cfg)
			if err != nil {
				conn.Close()
				return 0, err
			}
			return 0, ssh.NewClient(cc, chans, reqs).Close()
		})
		if err != nil {
			return nil, err
		}
	}
	c, err := remote.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// Measured with the connection open: hostsCPU(settle) would wait for
	// it to end, so count the live processes too.
	for _, o := range []struct {
		name  string
		stdin []byte
	}{
		{"kplay: one command (`true`) in the connection's long-lived shell", nil},
		{"kplay: one command (`true`) in a session of its own (every command before; still commands with stdin)", []byte{}},
	} {
		err := measureLive(ctx, e.bed, reps, o.name, &ops, func() error {
			_, err := c.RunInput(ctx, "true", o.stdin)
			return err
		})
		if err != nil {
			c.Close()
			return nil, err
		}
	}
	c.Close()
	dir, err := os.MkdirTemp(e.dir, "cm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	fl := &openSSH{env: e}
	ctl := filepath.Join(dir, "m")
	runSSH := func(args ...string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, "ssh", append(fl.sshArgs(ctl), args...)...)
		cmd.Env = e.environ()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("ssh: %w: %s", err, out)
		}
		cpu, _ := rusage(cmd.ProcessState)
		return cpu, nil
	}
	err = measure("OpenSSH: ControlMaster set-up (`ssh -M -f -N`), closed after each", func() (time.Duration, error) {
		cpu, err := runSSH("-o", "ControlMaster=yes", "-o", "ControlPersist=yes", "-f", "-N", h.Address)
		if err != nil {
			return 0, err
		}
		mcpu, err := closeMasters(ctx, dir, e.environ())
		return cpu + mcpu, err
	})
	if err != nil {
		return nil, err
	}
	if _, err := runSSH("-o", "ControlMaster=yes", "-o", "ControlPersist=yes", "-f", "-N", h.Address); err != nil {
		return nil, err
	}
	defer closeMasters(context.WithoutCancel(ctx), dir, e.environ())
	var childCPU time.Duration
	err = measureLive(ctx, e.bed, reps, "OpenSSH: one `ssh host true` through the master", &ops, func() error {
		cpu, err := runSSH("-o", "ControlMaster=no", h.Address, "true")
		childCPU += cpu
		return err
	})
	if err != nil {
		return nil, err
	}
	ops[len(ops)-1].CtlCPU += childCPU / time.Duration(reps+1)
	return ops, nil
}

// measureLive measures f while a connection stays open: host CPU is read
// without waiting for the connection's processes to end.
func measureLive(ctx context.Context, bed *testbed.Bed, reps int, name string, ops *[]Op, f func() error) error {
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	before, err := hostsCPU(ctx, bed, false)
	if err != nil {
		return err
	}
	self0 := selfCPU()
	var walls []time.Duration
	for range reps {
		t := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		walls = append(walls, time.Since(t))
	}
	ctl := selfCPU() - self0
	after, err := hostsCPU(ctx, bed, false)
	if err != nil {
		return err
	}
	*ops = append(*ops, Op{Name: name, Wall: median(walls),
		HostCPU: (after - before) / time.Duration(reps), CtlCPU: ctl / time.Duration(reps)})
	return nil
}

// selfCPU is this process's user+system CPU so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// handshakeVariant is one choice of host key, key exchange and cipher.
type handshakeVariant struct {
	name string
	cfg  *ssh.ClientConfig
}

// handshakeVariants returns the algorithm choices whose handshake cost is
// measured, all verifying the host key against known_hosts.
func handshakeVariants(e *env) ([]handshakeVariant, error) {
	h := e.bed.Hosts[0]
	key, err := os.ReadFile(e.bed.KeyPath)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return nil, err
	}
	// known_hosts with the host's ecdsa key too (the bed's lists ed25519 only).
	pub, err := os.ReadFile(h.Path("/etc/ssh/ssh_host_ecdsa_key.pub"))
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(pub))
	if len(f) < 2 {
		return nil, fmt.Errorf("%s: bad ecdsa host key", h.Name)
	}
	kh := filepath.Join(e.dir, "known_hosts_both")
	base, err := os.ReadFile(e.bed.KnownHostsPath)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(kh, append(base, []byte(h.Address+" "+f[0]+" "+f[1]+"\n")...), 0o600); err != nil {
		return nil, err
	}
	cb, err := knownhosts.New(kh)
	if err != nil {
		return nil, err
	}
	mk := func(name string, hostKey, kex, ciphers []string) handshakeVariant {
		return handshakeVariant{name: name, cfg: &ssh.ClientConfig{
			User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: cb,
			HostKeyAlgorithms: hostKey, Timeout: 30 * time.Second,
			Config: ssh.Config{KeyExchanges: kex, Ciphers: ciphers},
		}}
	}
	ed := []string{ssh.KeyAlgoED25519}
	return []handshakeVariant{
		mk("ed25519 host key, Go's default key exchange and cipher (what kplay uses)", ed, nil, nil),
		mk("ed25519, curve25519-sha256, chacha20-poly1305", ed, []string{ssh.KeyExchangeCurve25519}, []string{ssh.CipherChaCha20Poly1305}),
		mk("ed25519, curve25519-sha256, aes128-gcm", ed, []string{ssh.KeyExchangeCurve25519}, []string{ssh.CipherAES128GCM}),
		mk("ed25519, ecdh-sha2-nistp256, aes128-gcm", ed, []string{ssh.KeyExchangeECDHP256}, []string{ssh.CipherAES128GCM}),
		mk("ecdsa-sha2-nistp256 host key, curve25519-sha256, aes128-gcm", []string{ssh.KeyAlgoECDSA256}, []string{ssh.KeyExchangeCurve25519}, []string{ssh.CipherAES128GCM}),
	}, nil
}
