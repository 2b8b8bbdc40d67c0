package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/hostexec"
	"github.com/kplay/kplay/internal/shellquote"
)

// fakeHost is a Host that runs commands on this machine, each in a private
// mount namespace where the test's root/etc/kubernetes is /etc/kubernetes and
// root/var/lib is /var/lib (an overlay over /etc keeps the real /etc untouched).
// It needs root and unshare; tests skip without them unless CI=true.
type fakeHost struct {
	t    testing.TB
	root string
	name string
	addr string
	bin  string // prepended to PATH
	// tinyKplay mounts a 16 KiB tmpfs on /var/lib/kplay for each command (disk full).
	tinyKplay bool
	// hook, when set, may answer a command instead of running it.
	hook func(cmd string) (out []byte, err error, handled bool)
	// noForward makes DialContext fail as a server with AllowTcpForwarding no.
	noForward atomic.Bool
	// dials counts DialContext calls that were let through.
	dials atomic.Int64

	mu  sync.Mutex
	log []fakeRun
}

// fakeRun is one command the fake host ran, with its output.
type fakeRun struct {
	cmd string
	out []byte
}

// wrapScript sets up the namespace, then runs $KPLAY_CMD with sh -c.
const wrapScript = `set -e
mount -t tmpfs tmpfs "$KPLAY_ROOT/.ovl"
mkdir "$KPLAY_ROOT/.ovl/up" "$KPLAY_ROOT/.ovl/wk"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$KPLAY_ROOT/.ovl/up,workdir=$KPLAY_ROOT/.ovl/wk" /etc
mkdir -p /etc/kubernetes
mount --bind "$KPLAY_ROOT/etc/kubernetes" /etc/kubernetes
mount --bind "$KPLAY_ROOT/var/lib" /var/lib
if [ "$KPLAY_TINY" = 1 ]; then mkdir -p /var/lib/kplay && mount -t tmpfs -o size=16k tmpfs /var/lib/kplay; fi
set +e
exec sh -c "$KPLAY_CMD"
`

// requireRoot skips (or fails under CI=true) when namespaces cannot be used.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "fake host needs root for mount namespaces: run as root, e.g. sudo go test ./steps")
	}
	if err := exec.Command("unshare", "-m", "--propagation", "private", "true").Run(); err != nil {
		skipOrFail(t, "unshare -m does not work here ("+err.Error()+"): run as root where mount namespaces are allowed")
	}
}

// skipOrFail skips loudly ("SKIP: why"), unless CI=true, where a missing
// prerequisite is a failure. why says what is missing and how to run the test.
func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip("SKIP: " + why + " (under CI=true this is a failure)")
}

// newFakeHost returns a fake host with an empty root.
func newFakeHost(t testing.TB) *fakeHost {
	t.Helper()
	requireRoot(t)
	root := t.TempDir()
	for _, d := range []string{".ovl", "etc/kubernetes", "var/lib", "bin", "cfg"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &fakeHost{t: t, root: root, name: "cp1", addr: "127.0.0.1", bin: filepath.Join(root, "bin")}
}

// Name returns the inventory name.
func (h *fakeHost) Name() string { return h.name }

// Address returns the address.
func (h *fakeHost) Address() string { return h.addr }

// Run runs cmd in the host's namespace.
func (h *fakeHost) Run(ctx context.Context, cmd string) ([]byte, error) {
	return h.RunInput(ctx, cmd, nil)
}

// RunInput runs cmd with stdin.
func (h *fakeHost) RunInput(ctx context.Context, cmd string, stdin []byte) ([]byte, error) {
	if h.hook != nil {
		if out, err, ok := h.hook(cmd); ok {
			h.record(cmd, out)
			return out, err
		}
	}
	c := exec.CommandContext(ctx, "unshare", "-m", "--propagation", "private", "sh", "-c", wrapScript)
	tiny := "0"
	if h.tinyKplay {
		tiny = "1"
	}
	c.Env = append(os.Environ(), "KPLAY_ROOT="+h.root, "KPLAY_CMD="+cmd, "KPLAY_TINY="+tiny,
		"PATH="+h.bin+":"+os.Getenv("PATH"))
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	h.record(cmd, stdout.Bytes())
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ctx.Err() == nil {
			return stdout.Bytes(), &hostexec.ExitError{Status: ee.ExitCode(), Stderr: hostexec.Tail(stderr.String(), 10)}
		}
		if ctx.Err() != nil {
			return stdout.Bytes(), ctx.Err()
		}
		return stdout.Bytes(), err
	}
	return stdout.Bytes(), nil
}

func (h *fakeHost) record(cmd string, out []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = append(h.log, fakeRun{cmd: cmd, out: append([]byte(nil), out...)})
}

// runs returns the commands run so far.
func (h *fakeHost) runs() []fakeRun {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]fakeRun(nil), h.log...)
}

// ReadFile reads a file in the namespace; private keys are refused, as remote does.
func (h *fakeHost) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if strings.HasSuffix(p, ".key") {
		return nil, hostexec.ErrSecretPath
	}
	return h.Run(ctx, "cat -- "+shellquote.Quote(p))
}

// WriteFile writes a file atomically in the namespace.
func (h *fakeHost) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	cmd := fmt.Sprintf("set -e; p=%s; t=\"$p.kplay-tmp\"; cat > \"$t\"; chmod %o \"$t\"; mv -f \"$t\" \"$p\"", shellquote.Quote(p), mode.Perm())
	_, err := h.RunInput(ctx, cmd, data)
	return err
}

// DialContext dials from this machine (the fake host's network is the
// controller's), or fails as a host that forbids TCP forwarding.
func (h *fakeHost) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if h.noForward.Load() {
		return nil, fmt.Errorf("fake %s: %w", h.name, hostexec.ErrForwardingRefused)
	}
	h.dials.Add(1)
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// path maps a host path to the local file behind it.
func (h *fakeHost) path(p string) string {
	for _, pre := range []string{"/etc/kubernetes", "/var/lib"} {
		if p == pre || strings.HasPrefix(p, pre+"/") {
			return filepath.Join(h.root, p)
		}
	}
	return p
}

// target wraps the host for a step.
func (h *fakeHost) target() *Target { return NewTarget(h, "run-20260101-120000") }

// assertNoSecrets fails if any command output held private key material.
func (h *fakeHost) assertNoSecrets(t testing.TB, allow func(cmd string) bool) {
	t.Helper()
	for _, r := range h.runs() {
		if allow != nil && allow(r.cmd) {
			continue
		}
		if bytes.Contains(r.out, []byte("PRIVATE KEY")) || bytes.Contains(r.out, []byte("client-key-data")) {
			t.Errorf("command output carries private key material: %.200q", r.cmd)
		}
		for _, k := range h.keyData(t) {
			if bytes.Contains(r.out, []byte(k)) {
				t.Errorf("command output carries a kubeconfig's client-key-data: %.200q", r.cmd)
			}
		}
	}
}

// keyData returns the client-key-data values of the host's kubeconfigs.
func (h *fakeHost) keyData(t testing.TB) []string {
	var out []string
	m, _ := filepath.Glob(filepath.Join(h.root, "etc/kubernetes/*.conf"))
	for _, f := range m {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "client-key-data:"); ok && len(strings.TrimSpace(v)) > 40 {
				out = append(out, strings.TrimSpace(v)[:40])
			}
		}
	}
	return out
}

// testExpander expands {{ name }} from a map.
type testExpander map[string]string

// Text substitutes values verbatim.
func (e testExpander) Text(s string) (string, error) { return e.expand(s, false) }

// Shell substitutes values shell-quoted.
func (e testExpander) Shell(s string) (string, error) { return e.expand(s, true) }

// Get returns a variable.
func (e testExpander) Get(name string) (string, bool) {
	v, ok := e[name]
	return v, ok
}

func (e testExpander) expand(s string, quote bool) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return "", fmt.Errorf("unclosed {{ in %q", s)
		}
		name := strings.TrimSpace(s[i+2 : i+j])
		v, ok := e[name]
		if !ok {
			return "", fmt.Errorf("undefined variable %q", name)
		}
		if quote {
			v = shellquote.Quote(v)
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+j+2:]
	}
}

// newStep builds a step of type typ from YAML parameters text.
func newStep(t testing.TB, typ, params string) Step {
	t.Helper()
	s, err := buildStep(typ, params)
	if err != nil {
		t.Fatalf("%s %q: %v", typ, params, err)
	}
	return s
}

// buildStep is newStep returning the error.
func buildStep(typ, params string) (Step, error) {
	f, ok := Builtin()[typ]
	if !ok {
		return nil, fmt.Errorf("no step type %q", typ)
	}
	var n *yaml.Node
	if strings.TrimSpace(params) != "" {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(params), &doc); err != nil {
			return nil, err
		}
		n = doc.Content[0]
	}
	return f(n, testExpander{"home": "/home/x", "addr": "10.0.0.9"})
}
