// Package remote is kplay's SSH transport and the only user of goph.
//
// One Client is one SSH connection to one host, opened once and shared by
// all that host's steps. Commands without stdin run one at a time in one
// long-lived sh on the host (shell.go), each in its own `sh -c`; the others
// get a session each. The handshake
// is bounded, keepalives detect a dead peer, host keys are always verified,
// and cancelling a command kills every process it started on the host.
package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed" // scripts/kill.sh, write_file.sh
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kplay/kplay/internal/hostexec"
	"github.com/kplay/kplay/internal/shellquote"
	"github.com/melbahja/goph"
	"golang.org/x/crypto/ssh"
)

// Config says how to reach and authenticate to one host.
type Config struct {
	// Name is the inventory name, used in errors.
	Name string
	// Address is the host name or IP to dial.
	Address string
	// Port defaults to 22.
	Port int
	// User defaults to root.
	User string
	// KeyPath is the private key; empty means the SSH agent, then
	// IdentityFiles, else ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
	KeyPath string
	// IdentityFiles are more private keys (ssh_config's IdentityFile).
	IdentityFiles []string
	// IdentitiesOnly offers only the key files (and the agent's copies of them).
	IdentitiesOnly bool
	// CertificateFiles are OpenSSH user certificates; KEY-cert.pub beside
	// a key file is used without being listed.
	CertificateFiles []string
	// Jump are the bastions to go through, first hop first; each hop's
	// host key is verified and it authenticates as any host does.
	Jump []Config
	// Pool is shared by the connections of one run (bastions, agent,
	// keys); nil means a private one, closed with the client.
	Pool *Pool
	// KnownHosts is the known_hosts file; defaults to ~/.ssh/known_hosts.
	// Keys trusted on first use are recorded in it.
	KnownHosts string
	// MoreKnownHosts are more known_hosts files (ssh_config's
	// UserKnownHostsFile after the first), read to verify, never written.
	MoreKnownHosts []string
	// AcceptNewHostKeys trusts the key of a host never seen before (never a
	// changed one), and records it in KnownHosts when KeepNewHostKeys.
	AcceptNewHostKeys bool
	// KeepNewHostKeys writes keys trusted on first use to KnownHosts; a dry
	// run leaves it false, so it trusts them for this run and writes nothing.
	KeepNewHostKeys bool
	// ConnectTimeout bounds the TCP connect and the SSH handshake together.
	ConnectTimeout time.Duration
	// KeepaliveInterval is how often a keepalive is sent; 0 means 5s.
	KeepaliveInterval time.Duration
	// KeepaliveMax is how many intervals may pass without an answer; 0 means 3.
	KeepaliveMax int
	// Become runs every command through sudo.
	Become bool
	// BecomePassword, if set, is fed to `sudo -S` on stdin, never in argv.
	BecomePassword string
	// KnownHostsMu serialises known_hosts appends across clients; may be nil.
	KnownHostsMu *sync.Mutex
}

// ConnectError is a failure to reach or log in to a host.
type ConnectError struct {
	Host string
	// Phase is "connect", "handshake" or "auth".
	Phase string
	Err   error
}

// Error names the host and the phase.
func (e *ConnectError) Error() string {
	if msg := e.Err.Error(); strings.HasPrefix(msg, e.Phase+": ") {
		return e.Host + ": " + msg // "become: become: ..." reads as a stutter
	}
	return fmt.Sprintf("%s: %s: %v", e.Host, e.Phase, e.Err)
}

// Unwrap returns the cause.
func (e *ConnectError) Unwrap() error { return e.Err }

// Client is one SSH connection to one host. It implements steps.Host.
type Client struct {
	cfg     Config
	client  *goph.Client
	done    chan struct{}
	closeMu sync.Once
	seq     atomic.Uint64
	prefix  string
	sudo    string
	dead    atomic.Value // error: why the connection was given up
	shell   shellSlot    // the long-lived shell that runs commands without stdin (shell.go)
	act     *activity    // when bytes last arrived, for the keepalive
	// keepalives counts the keepalive requests sent.
	keepalives atomic.Uint64
	ownPool    *Pool // closed with the client when cfg.Pool was nil
}

// Dial opens the SSH connection, through cfg.Jump's bastions if any (their
// connections shared through cfg.Pool). Each hop's TCP connect (or
// channel) and handshake together take at most its ConnectTimeout
// (default 10s), and ctx can cancel all.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	var own *Pool
	if cfg.Pool == nil {
		own = NewPool()
		cfg.Pool = own
	}
	act := &activity{}
	sc, err := dialVia(ctx, cfg, act)
	if err != nil {
		if own != nil {
			own.Close()
		}
		return nil, err
	}
	cl := &Client{
		cfg:     cfg,
		client:  &goph.Client{Client: sc},
		done:    make(chan struct{}),
		ownPool: own,
		act:     act,
	}
	cl.prefix = randomID()
	go cl.keepalive()
	if cfg.Become {
		// Probing sudo is part of connecting: bounded like the handshake.
		bctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
		err := cl.chooseSudo(bctx)
		cancel()
		if err != nil {
			cl.Close()
			if bctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
				err = fmt.Errorf("sudo gave no answer within the connect timeout (%s): %w", cfg.ConnectTimeout, err)
			}
			return nil, &ConnectError{Host: cfg.Name, Phase: "become", Err: err}
		}
	}
	return cl, nil
}

// ExpandHome replaces a leading ~/ with the user's home directory.
func ExpandHome(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("expanding %s: %w", p, err)
		}
		return filepath.Join(home, p[1:]), nil
	}
	return p, nil
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// chooseSudo picks how to become root. Without a password: sudo -n, which
// fails at once instead of prompting. With a password, sudo -n is tried
// first: when sudo would not ask (NOPASSWD), feeding the password anyway
// would hand it to the command's stdin. Otherwise the password goes on
// stdin to `sudo -k -S`, which always reads it, so it never reaches the command.
func (c *Client) chooseSudo(ctx context.Context) error {
	c.sudo = "sudo -n -- "
	if c.cfg.BecomePassword == "" {
		return nil
	}
	pw := c.cfg.BecomePassword
	c.cfg.BecomePassword = ""
	_, err := c.Run(ctx, "true")
	if err == nil {
		return nil
	}
	if _, ok := hostexec.ExitStatus(err); !ok {
		return err
	}
	c.cfg.BecomePassword = pw
	c.sudo = "sudo -k -S -p '' -- "
	if _, err := c.Run(ctx, "true"); err != nil {
		return err
	}
	return nil
}

// keepalive closes the connection, marked dead, when keepalives show the
// peer is gone (keepaliveLoop), so that commands on a dead peer fail
// instead of hanging (golang/go#19338).
func (c *Client) keepalive() {
	err := keepaliveLoop(c.client.Client, c.act, c.cfg.KeepaliveInterval, c.cfg.KeepaliveMax, c.done, &c.keepalives)
	if err != nil {
		c.dead.Store(fmt.Errorf("connection lost: %w", err))
		c.Close()
	}
}

// Name returns the inventory name.
func (c *Client) Name() string { return c.cfg.Name }

// Address returns the dialled address.
func (c *Client) Address() string { return c.cfg.Address }

// Close closes the connection. It is safe to call more than once.
func (c *Client) Close() error {
	var err error
	c.closeMu.Do(func() {
		close(c.done)
		err = c.client.Close()
		if c.ownPool != nil {
			_ = c.ownPool.Close()
		}
	})
	return err
}

// Run runs cmd with sh on the host and returns its stdout.
func (c *Client) Run(ctx context.Context, cmd string) ([]byte, error) {
	return c.RunInput(ctx, cmd, nil)
}

// maxOutput bounds what is kept of one command's stdout.
const maxOutput = 64 << 20

// RunInput runs cmd with stdin. When ctx ends, every process the command
// started on the host is killed (they are found by a tag in their
// environment), and the session is closed.
func (c *Client) RunInput(ctx context.Context, cmd string, stdin []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if strings.IndexByte(cmd, 0) >= 0 {
		// sshd and sh would cut the command at the NUL and run the rest.
		return nil, hostexec.ErrNUL
	}
	tag := c.prefix + "." + strconv.FormatUint(c.seq.Add(1), 10)
	if stdin == nil && !(c.cfg.Become && c.cfg.BecomePassword != "") {
		out, stderr, status, ok, err := c.runInShell(ctx, tag, cmd)
		if ok {
			if err != nil {
				return out, err
			}
			return c.result(out, stderr, status, "")
		}
	}
	sess, err := c.client.NewSession()
	if err != nil {
		return nil, c.connErr("opening session", err)
	}
	defer sess.Close()
	var stdout limitedBuffer
	stdout.max = maxOutput
	var stderr tailBuffer
	stderr.max = 16 << 10
	sess.Stdout = &stdout
	sess.Stderr = &stderr
	in := stdin
	if c.cfg.Become && c.cfg.BecomePassword != "" {
		in = append([]byte(c.cfg.BecomePassword+"\n"), stdin...)
	}
	if in != nil {
		sess.Stdin = bytes.NewReader(in)
	}
	if err := sess.Start(c.wrap(tag, cmd)); err != nil {
		return nil, c.connErr("starting command", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGKILL)
		c.kill(tag)
		_ = sess.Close()
		<-waited
		return withoutSecret(stdout.Bytes()), fmt.Errorf("command cancelled (%w); its processes on the host were killed", context.Cause(ctx))
	}
	if err == nil {
		return c.result(stdout.Bytes(), stderr.String(), 0, "")
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return c.result(stdout.Bytes(), stderr.String(), ee.ExitStatus(), ee.Signal())
	}
	err = c.connErr("running command", err)
	return withoutSecret(stdout.Bytes()), fmt.Errorf("%w; its processes may still run on the host (find them by KPLAY_CMD=%s in /proc/*/environ)", err, tag)
}

// result turns a finished command's outputs and exit status (or signal)
// into Run's result: the stdout, or a *hostexec.ExitError with the tail of stderr;
// output holding a private key is withheld.
func (c *Client) result(stdout []byte, stderr string, status int, signal string) ([]byte, error) {
	if status == 0 && signal == "" {
		if err := checkSecret(stdout); err != nil {
			return nil, err
		}
		return stdout, nil
	}
	x := &hostexec.ExitError{Status: status, Signal: signal, Stderr: redactStderr(stderr, hostexec.Tail(stderr, 5))}
	if x.Signal != "" {
		x.Status = -1
	}
	if c.cfg.Become && x.Status == 1 && strings.Contains(stderr, "sudo: a password is required") {
		return nil, fmt.Errorf("become: sudo needs a password on this host: set KPLAY_BECOME_PASSWORD or allow NOPASSWD: %w", x)
	}
	if c.cfg.Become && strings.Contains(stderr, "incorrect password attempt") {
		return nil, fmt.Errorf("become: sudo refused the password: %w", x)
	}
	return withoutSecret(stdout), x
}

// connErr explains a transport failure, preferring the keepalive's verdict.
func (c *Client) connErr(what string, err error) error {
	if d, ok := c.dead.Load().(error); ok {
		return fmt.Errorf("%s: %w", what, d)
	}
	var me *ssh.ExitMissingError
	if errors.As(err, &me) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: connection lost (the remote command's exit status is unknown): %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// wrap tags cmd's environment so its processes can be found and killed,
// and runs it through sudo when become is set.
func (c *Client) wrap(tag, cmd string) string {
	return c.sudo + "env KPLAY_CMD=" + tag + " sh -c " + shellquote.Quote(cmd)
}

// killScript kills every process whose environment carries tag
// (scripts/kill.sh).
func killScript(tag string) string { return shellquote.Script(killSh, tag) }

// The transport's own scripts (remote/scripts), run with sh and quoted
// arguments.
var (
	//go:embed scripts/kill.sh
	killSh string
	//go:embed scripts/write_file.sh
	writeFileSh string
)

// kill kills every process on the host whose environment carries tag. It
// uses its own short timeout: the caller's context is already done.
func (c *Client) kill(tag string) {
	script := killScript(tag)
	sess, err := c.client.NewSession()
	if err != nil {
		return
	}
	defer sess.Close()
	if c.cfg.Become && c.cfg.BecomePassword != "" {
		sess.Stdin = strings.NewReader(c.cfg.BecomePassword + "\n")
	}
	done := make(chan struct{})
	go func() { _ = sess.Run(c.sudo + "sh -c " + shellquote.Quote(script)); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// ReadFile reads a file off the host. Private keys are refused.
func (c *Client) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if IsSecretPath(p) {
		return nil, fmt.Errorf("%w: %s", hostexec.ErrSecretPath, p)
	}
	b, err := c.Run(ctx, "cat -- "+shellquote.Quote(p))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return b, nil
}

// WriteFile writes data to p atomically: a temp file in the same directory
// with mode, then a rename. On failure the temp file is removed.
func (c *Client) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	script := shellquote.Script(writeFileSh, p, fmt.Sprintf("%04o", mode.Perm()))
	if _, err := c.RunInput(ctx, script, data); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// limitedBuffer keeps at most max bytes.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

// Write keeps what fits and drops the rest.
func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}

// tailBuffer keeps the last max bytes.
type tailBuffer struct {
	buf []byte
	max int
}

// Write appends p and keeps the tail.
func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

// String returns the kept tail.
func (b *tailBuffer) String() string { return string(b.buf) }
