package remote

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/kplay/kplay/internal/ttyprompt"
	"github.com/melbahja/goph"
	"golang.org/x/crypto/ssh"
	"golang.org/x/term"
)

// authPlan is the public keys a connection offers, in order, and a
// description of each for errors: which methods were tried.
type authPlan struct {
	signers []ssh.Signer
	tried   []string
}

// add appends a signer unless one with the same public key (and type) is there.
func (a *authPlan) add(s ssh.Signer, what string) {
	pk := s.PublicKey().Marshal()
	for _, x := range a.signers {
		if bytes.Equal(x.PublicKey().Marshal(), pk) {
			return
		}
	}
	a.signers = append(a.signers, s)
	a.tried = append(a.tried, what)
}

// authMethods builds, as OpenSSH does, the keys to offer: certificates
// first (KEY-cert.pub beside each key, and CertificateFiles), then the
// agent's keys (only those of the identity files with IdentitiesOnly),
// then the key files the agent does not hold. An encrypted key held by the
// agent is never decrypted; one it does not hold needs a passphrase.
func (p *Pool) authMethods(cfg Config) (*authPlan, error) {
	files, explicit, err := identityFiles(cfg)
	if err != nil {
		return nil, err
	}
	var agentSigners []ssh.Signer
	if ag := p.agentClient(); ag != nil {
		agentSigners, _ = ag.Signers()
	}
	held := func(pub ssh.PublicKey) ssh.Signer {
		for _, s := range agentSigners {
			if bytes.Equal(s.PublicKey().Marshal(), pub.Marshal()) {
				return s
			}
		}
		return nil
	}
	var plan authPlan
	var keys []ssh.Signer // one per identity file that could be used
	var problems []string
	for _, f := range files {
		s, err := p.identity(f, held)
		if err != nil {
			if explicit[f] {
				return nil, err
			}
			problems = append(problems, err.Error())
			continue
		}
		keys = append(keys, s)
	}
	for _, c := range certificateFiles(cfg, files) {
		if s, ok := certSigner(c, keys, agentSigners); ok {
			plan.add(s, "certificate "+c)
		}
	}
	for _, s := range agentSigners {
		if !cfg.IdentitiesOnly || containsKey(keys, s.PublicKey()) {
			plan.add(s, "agent key "+ssh.FingerprintSHA256(s.PublicKey()))
		}
	}
	for _, s := range keys {
		plan.add(s, "key file "+ssh.FingerprintSHA256(s.PublicKey()))
	}
	plan.tried = append(plan.tried, problems...)
	if len(plan.signers) == 0 {
		return nil, fmt.Errorf("no usable SSH key (tried: %s): set key in the inventory, IdentityFile in ssh_config, run an SSH agent, or create ~/.ssh/id_ed25519", orNone(plan.tried))
	}
	return &plan, nil
}

// identityFiles are the key files to try: the inventory's key, then
// ssh_config's IdentityFiles, else OpenSSH's defaults that exist.
// explicit marks those that must load.
func identityFiles(cfg Config) ([]string, map[string]bool, error) {
	explicit := map[string]bool{}
	var files []string
	for _, f := range append([]string{cfg.KeyPath}, cfg.IdentityFiles...) {
		if f == "" {
			continue
		}
		p, err := ExpandHome(f)
		if err != nil {
			return nil, nil, err
		}
		if f == cfg.KeyPath {
			explicit[p] = true
		}
		files = append(files, p)
	}
	if len(files) > 0 {
		return files, explicit, nil
	}
	for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		if p, err := ExpandHome("~/.ssh/" + name); err == nil {
			if _, err := os.Stat(p); err == nil {
				files = append(files, p)
			}
		}
	}
	return files, explicit, nil
}

// identity returns the signer for key file path: the agent's when the
// agent holds its public key (path.pub, or the key itself when it is not
// encrypted), else the file's, decrypted with a passphrase if need be.
func (p *Pool) identity(path string, held func(ssh.PublicKey) ssh.Signer) (ssh.Signer, error) {
	if b, err := os.ReadFile(path + ".pub"); err == nil {
		if pub, _, _, _, err := ssh.ParseAuthorizedKey(b); err == nil {
			if s := held(pub); s != nil {
				return s, nil
			}
		}
	}
	s, err := p.loadKey(path)
	if err != nil {
		return nil, err
	}
	if a := held(s.PublicKey()); a != nil {
		return a, nil
	}
	return s, nil
}

// loadKey reads a private key once per pool, asking for its passphrase
// when it is encrypted. Hosts that need the same key at once wait for the
// first one's load: one prompt and one decryption per key file per run.
func (p *Pool) loadKey(path string) (ssh.Signer, error) {
	p.mu.Lock()
	lk, ok := p.keys[path]
	if !ok {
		lk = &loadedKey{done: make(chan struct{})}
		p.keys[path] = lk
	}
	p.mu.Unlock()
	if ok {
		<-lk.done
		return lk.signer, lk.err
	}
	// Loading may prompt: not under p.mu, which the bastions need.
	s, err := goph.GetSigner(path, "")
	var pm *ssh.PassphraseMissingError
	if errors.As(err, &pm) {
		s, err = p.decrypt(path)
	} else if err != nil {
		err = fmt.Errorf("private key %s: %w", path, err)
	}
	lk.signer, lk.err = s, err
	close(lk.done)
	return s, err
}

// decrypt loads an encrypted key with its passphrase. The passphrase is
// never printed, logged or put in an error.
func (p *Pool) decrypt(path string) (ssh.Signer, error) {
	ask := p.Passphrase
	if ask == nil {
		ask = defaultPassphrase
	}
	pass, err := ask(path)
	if err != nil {
		return nil, fmt.Errorf("private key %s is passphrase-protected and not in the SSH agent: %w", path, err)
	}
	s, err := goph.GetSigner(path, string(pass))
	clear(pass)
	if err != nil {
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, fmt.Errorf("private key %s: wrong passphrase", path)
		}
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return s, nil
}

// defaultPassphrase takes KPLAY_KEY_PASSPHRASE, else asks on the terminal.
func defaultPassphrase(path string) ([]byte, error) {
	if v, ok := os.LookupEnv("KPLAY_KEY_PASSPHRASE"); ok {
		return []byte(v), nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return nil, errors.New("add it to the agent (ssh-add), or set KPLAY_KEY_PASSPHRASE (no terminal to ask on)")
	}
	defer tty.Close()
	pass, err := ttyprompt.ReadSecret(tty, tty, fmt.Sprintf("Enter passphrase for %s: ", path))
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	return pass, nil
}

// certificateFiles are the certificates to try: KEY-cert.pub beside each
// key file that has one, then CertificateFiles.
func certificateFiles(cfg Config, keys []string) []string {
	var out []string
	for _, k := range keys {
		if _, err := os.Stat(k + "-cert.pub"); err == nil {
			out = append(out, k+"-cert.pub")
		}
	}
	for _, c := range cfg.CertificateFiles {
		if p, err := ExpandHome(c); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// certSigner pairs the certificate in file with the key (from a file or
// the agent) it certifies.
func certSigner(file string, keys, agentKeys []ssh.Signer) (ssh.Signer, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, false
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil, false
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return nil, false
	}
	for _, s := range append(append([]ssh.Signer(nil), keys...), agentKeys...) {
		if bytes.Equal(s.PublicKey().Marshal(), cert.Key.Marshal()) {
			if cs, err := ssh.NewCertSigner(cert, s); err == nil {
				return cs, true
			}
		}
	}
	return nil, false
}

// containsKey reports whether one of ss has public key pub.
func containsKey(ss []ssh.Signer, pub ssh.PublicKey) bool {
	for _, s := range ss {
		if bytes.Equal(s.PublicKey().Marshal(), pub.Marshal()) {
			return true
		}
	}
	return false
}

// orNone joins list, or says "nothing".
func orNone(list []string) string {
	if len(list) == 0 {
		return "nothing"
	}
	return strings.Join(list, "; ")
}
