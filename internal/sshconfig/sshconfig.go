// Package sshconfig reads the OpenSSH client configuration (~/.ssh/config
// or a file given with ssh_config: or -F) through
// github.com/kevinburke/ssh_config, and answers, for one host alias, the
// settings kplay honours. It only reads: precedence (the inventory beats
// the file, the file beats kplay's defaults) is the caller's.
package sshconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	sshconfig "github.com/kevinburke/ssh_config"
)

// File is one parsed OpenSSH client config file.
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
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load reads path; an empty path means ~/.ssh/config, which may be absent
// (then no host has settings). A given path must exist.
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
	cfg, err := sshconfig.DecodeBytes(b)
	if err != nil {
		return nil, &Error{File: path, Msg: fmt.Sprintf("invalid ssh config: %v", err)}
	}
	f := &File{Path: path, cfg: cfg, home: home}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return f, nil
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

// Lookup returns the settings for alias, first match winning per key as
// in OpenSSH; IdentityFile and CertificateFile accumulate.
func (f *File) Lookup(alias string) Host {
	if f == nil || f.cfg == nil {
		return Host{}
	}
	get := func(k string) string {
		v, _ := f.cfg.Get(alias, k)
		return unquote(v)
	}
	all := func(k string) []string {
		vs, _ := f.cfg.GetAll(alias, k)
		var out []string
		for _, v := range vs {
			if strings.EqualFold(v, "none") {
				continue
			}
			out = append(out, f.expand(unquote(v), alias))
		}
		return out
	}
	h := Host{
		HostName:              strings.ReplaceAll(get("HostName"), "%h", alias),
		User:                  get("User"),
		IdentityFiles:         all("IdentityFile"),
		IdentitiesOnly:        strings.EqualFold(get("IdentitiesOnly"), "yes"),
		ProxyJump:             get("ProxyJump"),
		CertificateFiles:      all("CertificateFile"),
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
	for _, p := range strings.Fields(get("UserKnownHostsFile")) {
		h.KnownHostsFiles = append(h.KnownHostsFiles, f.expand(p, alias))
	}
	return h
}

// validate checks the values kplay uses, so that a bad one is reported
// with its line before any host is contacted.
func (f *File) validate() error {
	for _, h := range f.cfg.Hosts {
		for _, n := range h.Nodes {
			kv, ok := n.(*sshconfig.KV)
			if !ok {
				continue
			}
			if msg := badValue(strings.ToLower(kv.Key), unquote(kv.Value)); msg != "" {
				return &Error{File: f.Path, Line: kv.Pos().Line, Key: kv.Key, Msg: msg}
			}
		}
	}
	return nil
}

// badValue says what is wrong with a value kplay reads, or "".
func badValue(key, v string) string {
	switch key {
	case "port":
		if p, err := strconv.Atoi(v); err != nil || p < 1 || p > 65535 {
			return fmt.Sprintf("%q is not a port", v)
		}
	case "serveraliveinterval", "serveralivecountmax":
		if n, err := strconv.Atoi(v); err != nil || n < 0 {
			return fmt.Sprintf("%q is not a whole number", v)
		}
	case "connecttimeout":
		if s, err := strconv.Atoi(v); err != nil || s < 0 {
			return fmt.Sprintf("%q is not a number of seconds", v)
		}
	case "stricthostkeychecking":
		switch strings.ToLower(v) {
		case "yes", "no", "ask", "accept-new", "off":
		default:
			return fmt.Sprintf("%q is not yes, no, ask, accept-new or off", v)
		}
	case "identitiesonly":
		if !strings.EqualFold(v, "yes") && !strings.EqualFold(v, "no") {
			return fmt.Sprintf("%q is not yes or no", v)
		}
	case "proxyjump":
		if strings.ContainsAny(v, " \t") {
			return fmt.Sprintf("%q: hops are separated by commas, without spaces", v)
		}
	}
	return ""
}

// expand replaces a leading ~ and the tokens %d (home), %h (the alias)
// and %% in a path.
func (f *File) expand(p, alias string) string {
	p = expandTilde(p, f.home)
	r := strings.NewReplacer("%%", "%", "%d", f.home, "%h", alias)
	return r.Replace(p)
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

// unquote removes the double quotes OpenSSH allows around a value.
func unquote(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}
