package remote

import (
	"crypto/ed25519"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestLoadKeyOncePerRun: hosts that need the same encrypted key at once
// get one passphrase prompt and one decryption between them, and share
// the signer; a wrong passphrase is likewise asked once.
func TestLoadKeyOncePerRun(t *testing.T) {
	const pass = "s3cret"
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_enc")
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		answer  string
		wantErr bool
	}{
		{"right passphrase", pass, false},
		{"wrong passphrase", "nope", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var asked atomic.Int32
			p := NewPool()
			p.Passphrase = func(string) ([]byte, error) {
				asked.Add(1)
				time.Sleep(200 * time.Millisecond) // a person typing: the other hosts arrive meanwhile
				return []byte(tt.answer), nil
			}
			const hosts = 8
			signers := make([]ssh.Signer, hosts)
			errs := make([]error, hosts)
			var wg sync.WaitGroup
			for i := range hosts {
				wg.Go(func() { signers[i], errs[i] = p.loadKey(path) })
			}
			wg.Wait()
			if n := asked.Load(); n != 1 {
				t.Errorf("%d passphrase prompts for %d hosts loading one key, want 1", n, hosts)
			}
			for i := range hosts {
				if (errs[i] != nil) != tt.wantErr {
					t.Fatalf("host %d: err %v, want error %v", i, errs[i], tt.wantErr)
				}
				if !tt.wantErr && signers[i] != signers[0] {
					t.Errorf("host %d got a signer of its own", i)
				}
			}
		})
	}
}
