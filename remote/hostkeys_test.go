package remote

import (
	"crypto/ed25519"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// newPub returns a fresh ed25519 public key.
func newPub(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKnownHostsSeveralFiles: with several UserKnownHostsFiles, as
// OpenSSH: a key in any file is accepted, a host known with another key
// only is refused as changed (naming that file), a revoked key is refused
// whatever another file says, and a new key is recorded in the first file.
func TestKnownHostsSeveralFiles(t *testing.T) {
	const host = "10.1.2.3:22"
	offered, other := newPub(t), newPub(t)
	line := func(k ssh.PublicKey) string { return knownhosts.Line([]string{knownhosts.Normalize(host)}, k) + "\n" }
	for _, tt := range []struct {
		name        string
		first, more string // "-" means the file does not exist
		acceptNew   bool
		want        string // "ok", "changed FILE", "unknown", "revoked"
		recorded    bool   // the offered key is then in the first file
	}{
		{name: "in the second file", first: "", more: line(offered), want: "ok"},
		{name: "in the first, the second missing", first: line(offered), more: "-", want: "ok"},
		{name: "changed in the first, known in the second", first: line(other), more: line(offered), want: "ok"},
		{name: "changed in the second", first: "", more: line(other), acceptNew: true, want: "changed more"},
		{name: "revoked in the second", first: line(offered), more: "@revoked " + line(offered), want: "revoked"},
		{name: "unknown", first: "", more: "", want: "unknown"},
		{name: "unknown, accepted: recorded in the first", first: "", more: "", acceptNew: true, want: "ok", recorded: true},
		{name: "unknown, first missing: created", first: "-", more: "", acceptNew: true, want: "ok", recorded: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{"first": tt.first, "more": tt.more}
			for name, content := range files {
				if content != "-" {
					if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			k := knownHosts{path: filepath.Join(dir, "first"), more: []string{filepath.Join(dir, "more")}, cache: &khCache{},
				acceptNew: tt.acceptNew, keepNew: true, mu: &sync.Mutex{}}
			ex, err := k.existing()
			if err != nil {
				t.Fatal(err)
			}
			cb, err := k.callback(ex)
			if err != nil {
				t.Fatal(err)
			}
			err = cb(host, &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 22}, offered)
			var hk *HostKeyError
			got := "ok"
			switch {
			case err == nil:
			case !errors.As(err, &hk):
				t.Fatalf("not a HostKeyError: %v", err)
			case hk.Changed:
				got = "changed " + filepath.Base(hk.KnownHosts)
			case strings.Contains(err.Error(), "revoked"):
				got = "revoked"
			default:
				got = "unknown"
				if !strings.Contains(err.Error(), "nor in "+k.more[0]) {
					t.Errorf("the unknown-key error does not name every file read: %v", err)
				}
			}
			if got != tt.want {
				t.Errorf("%s, want %s (%v)", got, tt.want, err)
			}
			b, _ := os.ReadFile(k.path)
			if rec := strings.Contains(string(b), line(offered)); rec != tt.recorded && !(tt.first == line(offered)) {
				t.Errorf("offered key recorded in the first file: %v, want %v", rec, tt.recorded)
			}
			if m, _ := os.ReadFile(k.more[0]); tt.more != "-" && string(m) != tt.more {
				t.Errorf("the second file was written: %q", m)
			}
		})
	}
}
