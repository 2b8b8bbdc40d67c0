package remote

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
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
	// KnownHosts is the file that was consulted.
	KnownHosts string
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
	return fmt.Sprintf("unknown host key for %s (offered %s): not in %s; verify the fingerprint and add it with: %s >> %s"+
		" (or pass --accept-new-host-keys to trust on first use)",
		e.Host, e.Fingerprint, e.KnownHosts, scan, shellquote.Quote(e.KnownHosts))
}

// Unwrap returns the knownhosts error.
func (e *HostKeyError) Unwrap() error { return e.Err }

// knownHosts verifies host keys against one known_hosts file, optionally
// recording keys of hosts it has never seen (trust on first use).
type knownHosts struct {
	path      string
	cache     *khCache // the run's parsed known_hosts files (nil: parse each time)
	acceptNew bool
	keepNew   bool        // record accepted keys (false: trust for this run only)
	mu        *sync.Mutex // serialises appends to the file across hosts of one run
}

// callback returns the host key callback, reloading the file so keys accepted
// by other hosts of this run are seen.
func (k knownHosts) callback() (ssh.HostKeyCallback, error) {
	cb, err := k.cache.load(k.path)
	if err != nil {
		return nil, fmt.Errorf("reading known_hosts %s: %w", k.path, err)
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(hostname, remote, key)
		if err == nil {
			return nil
		}
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) {
			return &HostKeyError{Host: hostname, KnownHosts: k.path, Fingerprint: ssh.FingerprintSHA256(key), Err: err}
		}
		if len(ke.Want) > 0 {
			return &HostKeyError{Host: hostname, Changed: true, KnownHosts: k.path, Fingerprint: ssh.FingerprintSHA256(key), Err: err}
		}
		if !k.acceptNew {
			return &HostKeyError{Host: hostname, KnownHosts: k.path, Fingerprint: ssh.FingerprintSHA256(key), Err: err}
		}
		if !k.keepNew {
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
// the keys known_hosts holds for it, so that a host that also has other key
// types does not fail with a false mismatch (golang/go#29286). It returns nil
// when known_hosts knows no key for the host.
func (k knownHosts) algorithms(hostport string) ([]string, error) {
	cb, err := k.cache.load(k.path)
	if err != nil {
		return nil, fmt.Errorf("reading known_hosts %s: %w", k.path, err)
	}
	// Probe with a throwaway key: the KeyError lists the keys the file holds.
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
	var ke *knownhosts.KeyError
	if err := cb(hostport, addr, probe); !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil, nil
	}
	set := map[string]bool{}
	for _, w := range ke.Want {
		for _, a := range algorithmsFor(w.Key.Type()) {
			set[a] = true
		}
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
