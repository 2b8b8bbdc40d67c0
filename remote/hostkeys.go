package remote

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kplay/kplay/internal/shellquote"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyError is a host key that could not be verified against known_hosts.
type HostKeyError struct {
	// Host is host:port as dialled.
	Host string
	// Changed is true when known_hosts holds a different key for this host:
	// the connection may be intercepted.
	Changed bool
	// KnownHosts is the file that holds the changed key, or, for an
	// unknown key, the file to add it to.
	KnownHosts string
	// AlsoSearched are the other known_hosts files that were read.
	AlsoSearched []string
	// Fingerprint is the SHA256 fingerprint of the key the host offered.
	Fingerprint string
	// Err is the underlying knownhosts error.
	Err error
}

// Error explains the failure and how to fix it.
func (e *HostKeyError) Error() string {
	host, port, _ := net.SplitHostPort(e.Host)
	scan := "ssh-keyscan -t ed25519 " + shellquote.Quote(host)
	if port != "" && port != "22" {
		scan = "ssh-keyscan -t ed25519 -p " + port + " " + shellquote.Quote(host)
	}
	if e.Changed {
		return fmt.Sprintf("HOST KEY CHANGED for %s (offered %s): this may be a man-in-the-middle attack; "+
			"if the host was really reinstalled, verify the new key out of band, remove the old line from %s "+
			"(ssh-keygen -R %s -f %s) and add the new one (%s >> %s)",
			e.Host, e.Fingerprint, e.KnownHosts, shellquote.Quote(knownhosts.Normalize(e.Host)), shellquote.Quote(e.KnownHosts), scan, shellquote.Quote(e.KnownHosts))
	}
	searched := e.KnownHosts
	if len(e.AlsoSearched) > 0 {
		searched += " (nor in " + strings.Join(e.AlsoSearched, ", ") + ")"
	}
	return fmt.Sprintf("unknown host key for %s (offered %s): not in %s; verify the fingerprint and add it with: %s >> %s"+
		" (or pass --accept-new-host-keys to trust on first use)",
		e.Host, e.Fingerprint, searched, scan, shellquote.Quote(e.KnownHosts))
}

// Unwrap returns the knownhosts error.
func (e *HostKeyError) Unwrap() error { return e.Err }

// knownHosts verifies host keys against known_hosts files, as OpenSSH
// does with several UserKnownHostsFiles: a key in any file is accepted; a
// host known with other keys only is refused as changed; keys of hosts
// never seen are recorded (trust on first use) in the first file.
type knownHosts struct {
	path      string   // the first file: keys trusted on first use go here
	more      []string // the other files, read only
	cache     *khCache // the run's parsed known_hosts files (nil: parse each time)
	acceptNew bool
	keepNew   bool        // record accepted keys (false: trust for this run only)
	mu        *sync.Mutex // serialises appends to the file across hosts of one run
}

// existing returns the files that exist; a file that cannot be looked at
// for another reason is an error.
func (k knownHosts) existing() ([]string, error) {
	var out []string
	for _, p := range append([]string{k.path}, k.more...) {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("known_hosts %s: %w", p, err)
		}
	}
	return out, nil
}

// fileCallback is one known_hosts file's host key callback.
type fileCallback struct {
	path string
	cb   ssh.HostKeyCallback
}

// load parses files (through the run's cache).
func (k knownHosts) load(files []string) ([]fileCallback, error) {
	var out []fileCallback
	for _, p := range files {
		cb, err := k.cache.load(p)
		if err != nil {
			return nil, fmt.Errorf("reading known_hosts %s: %w", p, err)
		}
		out = append(out, fileCallback{p, cb})
	}
	return out, nil
}

// callback returns the host key callback over files (those that exist),
// reloaded when they changed so keys accepted by other hosts of this run
// are seen. A revoked key in any file is refused even if another lists it.
func (k knownHosts) callback(files []string) (ssh.HostKeyCallback, error) {
	cbs, err := k.load(files)
	if err != nil {
		return nil, err
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		fp := ssh.FingerprintSHA256(key)
		ok := false
		var changed *HostKeyError
		for _, f := range cbs {
			err := f.cb(hostname, remote, key)
			var ke *knownhosts.KeyError
			switch {
			case err == nil:
				ok = true
			case !errors.As(err, &ke):
				return &HostKeyError{Host: hostname, KnownHosts: f.path, Fingerprint: fp, Err: err} // revoked
			case len(ke.Want) > 0 && changed == nil:
				changed = &HostKeyError{Host: hostname, Changed: true, KnownHosts: f.path, Fingerprint: fp, Err: err}
			}
		}
		switch {
		case ok:
			return nil
		case changed != nil:
			return changed
		case !k.acceptNew:
			return &HostKeyError{Host: hostname, KnownHosts: k.path, AlsoSearched: k.more, Fingerprint: fp, Err: &knownhosts.KeyError{}}
		case !k.keepNew:
			return nil // trusted for this connection only: a dry run writes nothing
		}
		return k.append(hostname, key)
	}, nil
}

// append records key for hostname in the known_hosts file.
func (k knownHosts) append(hostname string, key ssh.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		return fmt.Errorf("recording host key: %w", err)
	}
	f, err := os.OpenFile(k.path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("recording host key: %w", err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key) + "\n"
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("recording host key in %s: %w", k.path, err)
	}
	return f.Close()
}

// khCache holds the run's parsed known_hosts files. Each dial parsed the
// whole file twice, so N hosts listed in one file cost N×N parsed lines:
// at 300 hosts most of kplay's memory and much of its CPU. A file is parsed
// again only when its size or time changed (a key was recorded since).
type khCache struct {
	mu    sync.Mutex
	files map[string]khFile
}

// khFile is one parsed known_hosts file and the stat it was parsed at.
type khFile struct {
	size int64
	mod  time.Time
	cb   ssh.HostKeyCallback // read-only after parsing: safe for every host at once
}

// load returns the host key callback of the file at path, parsed once per
// version of the file.
func (c *khCache) load(path string) (ssh.HostKeyCallback, error) {
	st, err := os.Stat(path)
	if c == nil || err != nil {
		return knownhosts.New(path)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.files[path]; ok && f.size == st.Size() && f.mod.Equal(st.ModTime()) {
		return f.cb, nil
	}
	cb, err := knownhosts.New(path)
	if err != nil {
		return nil, err
	}
	if c.files == nil {
		c.files = map[string]khFile{}
	}
	c.files[path] = khFile{size: st.Size(), mod: st.ModTime(), cb: cb}
	return cb, nil
}

// algorithms returns the host key algorithms to offer for hostport: those of
// the keys files hold for it, so that a host that also has other key
// types does not fail with a false mismatch (golang/go#29286). It returns
// nil when no file knows a key for the host.
func (k knownHosts) algorithms(files []string, hostport string) ([]string, error) {
	cbs, err := k.load(files)
	if err != nil {
		return nil, err
	}
	// Probe with a throwaway key: the KeyError lists the keys a file holds.
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(hostport)
	p, _ := strconv.Atoi(port)
	addr := &net.TCPAddr{IP: net.ParseIP(host), Port: p}
	set := map[string]bool{}
	for _, f := range cbs {
		var ke *knownhosts.KeyError
		if err := f.cb(hostport, addr, probe); !errors.As(err, &ke) {
			continue
		}
		for _, w := range ke.Want {
			for _, a := range algorithmsFor(w.Key.Type()) {
				set[a] = true
			}
		}
	}
	if len(set) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	sort.Strings(out)
	return out, nil
}

// algorithmsFor maps a key type to the signature algorithms that use it.
func algorithmsFor(keyType string) []string {
	switch keyType {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	case ssh.CertAlgoRSAv01:
		return []string{ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01}
	}
	return []string{keyType}
}
