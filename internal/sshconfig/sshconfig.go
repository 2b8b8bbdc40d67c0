// Package sshconfig reads the OpenSSH client configuration (~/.ssh/config
// or a file given with ssh_config: or -F) and answers, for one host, the
// settings kplay honours, as ssh(1) would: Host and Match blocks (Match
// all, host, originalhost, user, localuser; other criteria are refused),
// Include, first value wins, and the TOKENS of ssh_config(5) in paths. It
// only reads: precedence (the inventory beats the file, the file beats
// kplay's defaults) is the caller's.
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
)

// File is one parsed OpenSSH client config file, its Includes read.
type File struct {
	// Path is the file read ("" when none was, e.g. no ~/.ssh/config).
	Path string
	ds   []directive
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
// (then no host has settings). A given path must exist. Every value kplay
// reads, Match criterion and token is checked here, before any host is
// contacted.
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
	if _, err := os.Stat(path); err != nil && !explicit && errors.Is(err, fs.ErrNotExist) {
		return &File{home: home}, nil
	}
	ds, err := parseFile(path, home, 0)
	if err != nil {
		return nil, err
	}
	f := &File{Path: path, ds: ds, home: home}
	if err := validate(ds); err != nil {
		return nil, err
	}
	return f, nil
}

// Query names a connection as ssh's command line would: the host as
// given, and what the caller already set (like -o HostName=, -l, -p),
// which Match host and user see and the tokens use.
type Query struct {
	// Host is the host as given: Host patterns, Match originalhost, %n.
	Host string
	// HostName, if set, beats the file's HostName.
	HostName string
	// User, if set, beats the file's User.
	User string
	// Port, if set, beats the file's Port.
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
}

// Lookup returns the settings for q, as ssh would read them: every Host
// and Match block that selects the host, in order, the first value of a
// key winning; IdentityFile and CertificateFile accumulate. Paths have ~
// and tokens expanded with the connection's final host name, port and
// user (q's, else the file's, else 22 and DefaultUser).
func (f *File) Lookup(q Query) Host {
	if f == nil || len(f.ds) == 0 {
		return Host{}
	}
	e := newEval(q)
	e.walk(f.ds, true, false)
	get := func(k string) string {
		if a := e.first[k]; len(a) > 0 {
			return a[0]
		}
		return ""
	}
	h := Host{
		HostName:              e.hostName(get("hostname")),
		User:                  get("user"),
		IdentitiesOnly:        strings.EqualFold(get("identitiesonly"), "yes"),
		ProxyJump:             get("proxyjump"),
		StrictHostKeyChecking: strings.ToLower(get("stricthostkeychecking")),
	}
	h.Port, _ = strconv.Atoi(get("port"))
	if s, err := strconv.Atoi(get("connecttimeout")); err == nil {
		h.ConnectTimeout = time.Duration(s) * time.Second
	}
	t := f.tokensFor(q, h)
	paths := func(vs []string) []string {
		var out []string
		for _, v := range vs {
			if !strings.EqualFold(v, "none") {
				out = append(out, t.expand(expandTilde(v, f.home)))
			}
		}
		return out
	}
	h.IdentityFiles = paths(e.all["identityfile"])
	h.CertificateFiles = paths(e.all["certificatefile"])
	h.KnownHostsFiles = paths(e.first["userknownhostsfile"])
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

// eval is one lookup's walk through the directives.
type eval struct {
	q     Query
	local string
	first map[string][]string // the first value of each key
	all   map[string][]string // every IdentityFile, CertificateFile
}

// newEval starts a lookup for q.
func newEval(q Query) *eval {
	return &eval{q: q, local: localUser(), first: map[string][]string{}, all: map[string][]string{}}
}

// walk applies ds in order. active is whether the lines before the first
// Host or Match apply; never (an Include inside a block that does not
// apply) makes nothing in ds apply. An Include's blocks end with its file.
func (e *eval) walk(ds []directive, active, never bool) {
	for _, d := range ds {
		switch d.key {
		case "host":
			active = !never && hostMatches(e.q.Host, d.args)
		case "match":
			active = !never && e.state().matches(d.match)
		case "include":
			e.walk(d.inc, active, never || !active)
		default:
			if !active {
				continue
			}
			if d.key == "identityfile" || d.key == "certificatefile" {
				e.all[d.key] = append(e.all[d.key], d.args[0])
			} else if _, ok := e.first[d.key]; !ok {
				e.first[d.key] = d.args
			}
		}
	}
}

// state is what a Match line sees: the host name and user so far.
func (e *eval) state() matchState {
	hn := ""
	if a := e.first["hostname"]; len(a) > 0 {
		hn = a[0]
	}
	user := ""
	if a := e.first["user"]; len(a) > 0 {
		user = a[0]
	}
	return matchState{original: e.q.Host, host: firstSet(e.q.HostName, e.hostName(hn), e.q.Host),
		user: firstSet(e.q.User, user, e.q.DefaultUser, e.local), localUser: e.local}
}

// hostName expands a HostName value's %h (the host as given) and %%.
func (e *eval) hostName(v string) string {
	return tokens{'%': "%", 'h': e.q.Host}.expand(v)
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

// validate checks every directive kplay reads (in included files too),
// so that a bad one is reported with its line before any host is
// contacted.
func validate(ds []directive) error {
	for _, d := range ds {
		if d.key == "include" {
			if err := validate(d.inc); err != nil {
				return err
			}
			continue
		}
		if msg := badValue(d); msg != "" {
			return &Error{File: d.file, Line: d.line, Key: keyName(d.key), Msg: msg}
		}
	}
	return nil
}

// keyName spells a keyword as ssh_config(5) does, for errors.
func keyName(k string) string {
	for _, n := range []string{"HostName", "User", "Port", "IdentityFile", "IdentitiesOnly", "ProxyJump", "UserKnownHostsFile",
		"CertificateFile", "ConnectTimeout", "StrictHostKeyChecking"} {
		if strings.EqualFold(n, k) {
			return n
		}
	}
	return k
}

// badValue says what is wrong with a directive kplay reads, or "".
func badValue(d directive) string {
	single := map[string]bool{"hostname": true, "user": true, "port": true, "identityfile": true, "certificatefile": true,
		"connecttimeout": true, "stricthostkeychecking": true, "identitiesonly": true, "proxyjump": true}
	if single[d.key] && len(d.args) > 1 {
		return fmt.Sprintf("one value expected, got %d (%s)", len(d.args), strings.Join(d.args, " "))
	}
	v := d.args[0]
	switch d.key {
	case "port":
		if p, err := strconv.Atoi(v); err != nil || p < 1 || p > 65535 {
			return fmt.Sprintf("%q is not a port", v)
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
		if strings.ContainsAny(v, "%$") {
			return fmt.Sprintf("%q: kplay does not expand tokens or variables in ProxyJump", v)
		}
	case "hostname":
		return checkTokens(v, "%h")
	case "identityfile", "certificatefile", "userknownhostsfile":
		return badPaths(d)
	}
	return ""
}

// badPaths checks the paths of IdentityFile, CertificateFile or
// UserKnownHostsFile: their tokens, and ~ alone or followed by /.
func badPaths(d directive) string {
	for _, v := range d.args {
		if d.key == "userknownhostsfile" && strings.EqualFold(v, "none") {
			return "none is not supported: kplay always verifies host keys against a known_hosts file"
		}
		if strings.HasPrefix(v, "~") && v != "~" && !strings.HasPrefix(v, "~/") {
			return fmt.Sprintf("%q: ~user is not supported (use ~/ or an absolute path)", v)
		}
		if msg := checkTokens(v, pathTokens); msg != "" {
			return msg
		}
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
