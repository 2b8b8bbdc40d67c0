// Package integration runs the kplay binary against real local test hosts:
// network namespaces with Debian's OpenSSH sshd (see testbed). Nothing here
// fakes SSH, hosts or kubeadm.
package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kplay/kplay/testbed"
)

// kplayBin is built once per test binary by TestMain.
type binary struct{ path string }

var kplay binary // set once in TestMain, read-only afterwards

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kplay-it-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kplay.path = filepath.Join(dir, "kplay")
	// Every kplay run writes its run log under $XDG_STATE_HOME: keep the
	// tests' logs with the binary, removed at the end, not in root's home.
	if err := os.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := exec.Command("go", "build", "-o", kplay.path, "github.com/kplay/kplay/cmd/kplay").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building kplay: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one kplay invocation.
type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// run runs kplay with args and returns its output and exit code.
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kplay.path, args...)
	cmd.Env = append(os.Environ(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("kplay %v: %v", args, err)
	}
	t.Logf("kplay %s -> exit %d in %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
	return r
}

// writeFile writes a file in a test temp dir and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// snapshot hashes every file under a host's own directories (path, mode,
// owner, content, symlink target), except logs and runtime state that
// sshd itself changes.
func snapshot(t *testing.T, h *testbed.Host) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range []string{"/etc/kubernetes", "/etc/ssh", "/root", "/tmp", "/var/lib", "/home"} {
		root := h.Path(d)
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			info, err := os.Lstat(p)
			if err != nil {
				return err
			}
			st := info.Sys().(*syscall.Stat_t)
			desc := fmt.Sprintf("%v uid=%d gid=%d", info.Mode(), st.Uid, st.Gid)
			switch {
			case info.Mode()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				desc += " -> " + target
			case info.Mode().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sum := sha256.Sum256(b)
				desc += " " + hex.EncodeToString(sum[:])
			}
			rel, _ := filepath.Rel(h.Root, p)
			out[rel] = desc
			return nil
		})
		if err != nil {
			t.Fatalf("snapshot %s: %v", h.Name, err)
		}
	}
	return out
}

// diffSnapshots describes what changed between two snapshots.
func diffSnapshots(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "removed "+k)
		} else if w != v {
			d = append(d, "changed "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	sort.Strings(d)
	return d
}

// inventory writes a kplay inventory for bed's hosts with extra YAML lines.
func inventory(t *testing.T, b *testbed.Bed, knownHosts string, extraHosts string) string {
	t.Helper()
	if knownHosts == "" {
		knownHosts = b.KnownHostsPath
	}
	var s strings.Builder
	// 10s: an SSH handshake is CPU-bound, and under `go test ./...` with
	// -race on 2 cores it has taken over 3s. Tests of the bound itself set
	// connect_timeout on their own hosts.
	fmt.Fprintf(&s, "defaults:\n  user: root\n  key: %s\n  known_hosts: %s\n  connect_timeout: 10s\nhosts:\n", b.KeyPath, knownHosts)
	var names []string
	for _, h := range b.Hosts {
		fmt.Fprintf(&s, "  %s: {address: %s}\n", h.Name, h.Address)
		names = append(names, h.Name)
	}
	s.WriteString(extraHosts)
	fmt.Fprintf(&s, "groups:\n  control_plane: [%s]\n", strings.Join(names, ", "))
	return writeFile(t, "inventory.yaml", s.String())
}

// hostProcs lists the command lines of the host's processes matching substr.
func hostProcs(t *testing.T, h *testbed.Host, substr string) []string {
	t.Helper()
	out, err := h.Exec(t.Context(), "ps", "-eo", "pid,args")
	if err != nil {
		t.Fatalf("ps on %s: %v", h.Name, err)
	}
	var found []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, substr) && !strings.Contains(l, "ps -eo") {
			found = append(found, strings.TrimSpace(l))
		}
	}
	return found
}
