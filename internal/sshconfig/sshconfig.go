// Package sshconfig reads the OpenSSH client configuration (~/.ssh/config
// or a file given with ssh_config: or -F) through
// github.com/kevinburke/ssh_config, and answers, for one host, the
// settings kplay honours: first value wins, IdentityFile and
// CertificateFile accumulate, and paths get ~, ${VAR} and the TOKENS of
// ssh_config(5). What that parser refuses (Match exec and most Match
// criteria) or would misread (see check.go) is an error naming the file
// and the line. It only reads: precedence (the inventory beats the file,
// the file beats kplay's defaults) is the caller's.
package sshconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	sshconfig "github.com/kevinburke/ssh_config"
)

// File is one parsed OpenSSH client config file, its Includes read.
type File struct {
	// Path is the file read ("" when none was, e.g. no ~/.ssh/config).
	Path string
	cfg  *sshconfig.Config
	home string
}

// Error is a bad value in a config file, with the file, line and key.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

// Error names the file, the line and the key.
func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Key != "":
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load reads path; an empty path means ~/.ssh/config, which may be absent
// (then no host has settings). A given path must exist. The file and
// every file it includes are checked here (Match lines, every value kplay
// reads, tokens), before any host is contacted.
func Load(path string) (*File, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("ssh config: finding the home directory: %w", err)
	}
	explicit := path != ""
	if !explicit {
		path = filepath.Join(home, ".ssh", "config")
	}
	path = expandTilde(path, home)
	b, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return &File{home: home}, nil
		}
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read ssh config: %v", err)}
	}
	cfg, err := checkFile(path, b, 0)
	if err != nil {
		return nil, err
	}
	return &File{Path: path, cfg: cfg, home: home}, nil
}

// Query names a connection as ssh's command line would: the host as
// given, and what the caller already set (like -o HostName=, -l, -p),
// which the tokens use.
type Query struct {
	// Host is the name looked up: Host and Match host patterns are
	// matched against it; it is %n and %k.
	Host string
	// HostName, if set, beats the file's HostName in the tokens.
	HostName string
	// User, if set, beats the file's User in the tokens.
	User string
	// Port, if set, beats the file's Port in the tokens.
	Port int
	// DefaultUser is the remote user when nothing sets one; "" means the local user.
	DefaultUser string
}

// Host is what the file says about one host alias; zero values are unset.
type Host struct {
	// HostName is the address to dial.
	HostName string
	User     string
	Port     int
	// IdentityFiles are private keys, in order, ~ expanded.
	IdentityFiles []string
	// IdentitiesOnly limits keys to IdentityFiles (agent keys included only when they match).
	IdentitiesOnly bool
	// ProxyJump is the jump host chain ("a,b"), or "none", or "".
	ProxyJump string
	// KnownHostsFiles are UserKnownHostsFile's files, ~ expanded.
	KnownHostsFiles []string
	// CertificateFiles are user certificates, ~ expanded.
	CertificateFiles []string
	// ConnectTimeout bounds connecting.
	ConnectTimeout time.Duration
	// StrictHostKeyChecking is yes, no, ask, accept-new, off, or "".
	StrictHostKeyChecking string
	// ServerAliveInterval and ServerAliveCountMax set the keepalive; 0 is
	// unset (OpenSSH's ServerAliveInterval 0, no keepalives, leaves kplay's).
	ServerAliveInterval time.Duration
	ServerAliveCountMax int
}

// Lookup returns the settings for q.Host, first match winning per key as
// in OpenSSH; IdentityFile and CertificateFile accumulate. Paths have ~
// and tokens expanded with the connection's final host name, port and
// user (q's, else the file's, else 22 and DefaultUser).
func (f *File) Lookup(q Query) Host {
	if f == nil || f.cfg == nil {
		return Host{}
	}
	get := func(k string) string {
		v, _ := f.cfg.Get(q.Host, k)
		return v
	}
	all := func(k string) []string {
		vs, _ := f.cfg.GetAll(q.Host, k)
		var out []string
		for _, v := range vs {
			if !strings.EqualFold(v, "none") {
				out = append(out, v)
			}
		}
		return out
	}
	h := Host{
		HostName:              tokens{'%': "%", 'h': q.Host}.expand(get("HostName")),
		User:                  get("User"),
		IdentitiesOnly:        strings.EqualFold(get("IdentitiesOnly"), "yes"),
		ProxyJump:             get("ProxyJump"),
		StrictHostKeyChecking: strings.ToLower(get("StrictHostKeyChecking")),
	}
	h.Port, _ = strconv.Atoi(get("Port"))
	if s, err := strconv.Atoi(get("ConnectTimeout")); err == nil {
		h.ConnectTimeout = time.Duration(s) * time.Second
	}
	if s, err := strconv.Atoi(get("ServerAliveInterval")); err == nil {
		h.ServerAliveInterval = time.Duration(s) * time.Second
	}
	h.ServerAliveCountMax, _ = strconv.Atoi(get("ServerAliveCountMax"))
	t := f.tokensFor(q, h)
	paths := func(vs []string) []string {
		var out []string
		for _, v := range vs {
			out = append(out, t.expand(expandTilde(v, f.home)))
		}
		return out
	}
	h.IdentityFiles = paths(all("IdentityFile"))
	h.CertificateFiles = paths(all("CertificateFile"))
	h.KnownHostsFiles = paths(strings.Fields(get("UserKnownHostsFile")))
	return h
}

// tokensFor is the token values of q's connection once h is known.
func (f *File) tokensFor(q Query, h Host) tokens {
	host := firstSet(q.HostName, h.HostName, q.Host)
	ruser := firstSet(q.User, h.User, q.DefaultUser, localUser())
	port := q.Port
	if port == 0 {
		port = h.Port
	}
	if port == 0 {
		port = 22
	}
	return pathTokenValues(f.home, q.Host, host, ruser, port)
}

// firstSet returns the first non-empty string.
func firstSet(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// localUser is the name of the user running kplay, or "".
func localUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// expandTilde replaces a leading ~/ with home.
func expandTilde(p, home string) string {
	if p == "~" {
		return home
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return filepath.Join(home, rest)
	}
	return p
}
