package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/kplay/kplay/internal/sshconfig"
	"github.com/kplay/kplay/remote"
)

// SSHOptions are the run-wide SSH settings.
type SSHOptions struct {
	// AcceptNew records the keys of hosts not in known_hosts (never a changed key).
	AcceptNew bool
	// BecomePassword is fed to sudo on stdin.
	BecomePassword string
	// ConfigFile (-F) is read instead of each host's ssh_config or ~/.ssh/config.
	ConfigFile string
	// DryRun trusts new host keys (with AcceptNew) for this run only:
	// nothing is written to known_hosts.
	DryRun bool
}

// SSH is the SSH side of one run: every host's connection settings,
// resolved from the inventory, its OpenSSH client config and kplay's
// defaults (in that precedence), and the pool its connections share
// (one connection per bastion). Close it when the run ends.
type SSH struct {
	cfgs map[string]remote.Config
	pool *remote.Pool
}

// NewSSH reads the ssh config files the hosts use and resolves each
// host's settings; a bad file or proxy_jump is a *ConfigError, found
// before any host is contacted.
func NewSSH(plan *Plan, o SSHOptions) (*SSH, error) {
	s := &SSH{cfgs: map[string]remote.Config{}, pool: remote.NewPool()}
	files := map[string]*sshconfig.File{}
	var mu sync.Mutex // kept by the becomes' known_hosts appends
	for _, h := range plan.Hosts {
		path := o.ConfigFile
		if path == "" {
			path = h.SSHConfig // made relative to its inventory file when read
		}
		f, ok := files[path]
		if !ok {
			var err error
			if f, err = sshconfig.Load(path); err != nil {
				return nil, sshConfigErr(err)
			}
			files[path] = f
		}
		if err := f.Refuse(h.Address); err != nil {
			return nil, sshConfigErr(err)
		}
		cfg, err := resolveSSH(h, f, o)
		if err != nil {
			return nil, &ConfigError{File: h.File, Line: h.Line, Key: "proxy_jump", Msg: err.Error() + " (host " + h.Name + ")"}
		}
		cfg.KnownHostsMu, cfg.Pool = &mu, s.pool
		for i := range cfg.Jump {
			cfg.Jump[i].KnownHostsMu = &mu
		}
		s.cfgs[h.Name] = cfg
	}
	return s, nil
}

// sshConfigErr turns an ssh config error into a *ConfigError (exit 2).
func sshConfigErr(err error) error {
	var se *sshconfig.Error
	if errors.As(err, &se) {
		return &ConfigError{File: se.File, Line: se.Line, Key: se.Key, Msg: se.Msg}
	}
	return &ConfigError{Msg: err.Error()}
}

// Dialer opens the hosts' connections with their resolved settings.
func (s *SSH) Dialer() Dialer {
	return func(ctx context.Context, h *HostSpec) (Conn, error) {
		cfg, ok := s.cfgs[h.Name]
		if !ok {
			return nil, fmt.Errorf("%s: no SSH settings resolved (not in the plan)", h.Name)
		}
		return remote.Dial(ctx, cfg)
	}
}

// Config returns the resolved settings of a host, for tests and -v.
func (s *SSH) Config(name string) (remote.Config, bool) {
	c, ok := s.cfgs[name]
	return c, ok
}

// Bastions is how many bastion connections the run made.
func (s *SSH) Bastions() int { return s.pool.Bastions() }

// Close closes the bastion connections.
func (s *SSH) Close() error { return s.pool.Close() }

// resolveSSH merges one host's settings: the inventory first, then its
// ssh config for what the inventory left unset, then kplay's defaults
// (which remote fills). StrictHostKeyChecking yes only ever turns
// AcceptNew off. The bastions are resolved through the ssh config too.
func resolveSSH(h *HostSpec, f *sshconfig.File, o SSHOptions) (remote.Config, error) {
	q := sshconfig.Query{Host: h.Address, DefaultUser: defaultUser}
	if !slices.Contains(h.Defaulted, "user") {
		q.User = h.User
	}
	if !slices.Contains(h.Defaulted, "port") {
		q.Port = h.Port
	}
	if h.Address != h.Name {
		q.HostName = h.Address // set in the inventory: ssh_config's HostName does not apply
	}
	sc := f.Lookup(q)
	cfg := remote.Config{
		Name: h.Name, Address: h.Address, Port: h.Port, User: h.User, KeyPath: h.Key,
		KnownHosts: h.KnownHosts, ConnectTimeout: h.ConnectTimeout, Become: h.Become,
		KeepaliveInterval: h.KeepaliveInterval, KeepaliveMax: h.KeepaliveCountMax,
		BecomePassword: o.BecomePassword, AcceptNewHostKeys: o.AcceptNew, KeepNewHostKeys: !o.DryRun,
		IdentityFiles: sc.IdentityFiles, IdentitiesOnly: sc.IdentitiesOnly, CertificateFiles: sc.CertificateFiles,
	}
	applySSHConfig(&cfg, sc, h.Defaulted, h.Address == h.Name)
	jump := h.ProxyJump
	if jump == "" {
		jump = sc.ProxyJump
	}
	hops, err := resolveJump(jump, f, cfg, []string{h.Address})
	if err != nil {
		return remote.Config{}, err
	}
	cfg.Jump = hops
	return cfg, nil
}

// defaultUser is the remote user when nothing sets one (remote's default).
const defaultUser = "root"

// maxJumpDepth bounds how deep bastions' own ProxyJumps may nest.
const maxJumpDepth = 8

// resolveJump turns a ProxyJump value into the hops to go through, first
// hop first, each resolved through the ssh config as ssh does (HostName,
// User, Port, IdentityFile, UserKnownHostsFile, ...; the value's user@ and
// :port win). As with ssh -J a,b, the first hop's own ProxyJump is
// followed (a chain before it); the later hops are reached through the
// earlier ones. path is the hosts whose ProxyJump led here: meeting one
// again is a loop, and an error. base gives the hops the target's
// known_hosts, timeouts, host key policy and inventory key.
func resolveJump(spec string, f *sshconfig.File, base remote.Config, path []string) ([]remote.Config, error) {
	hops, err := parseJump(spec)
	if err != nil {
		return nil, err
	}
	var out []remote.Config
	for i, hop := range hops {
		if slices.Contains(path, hop.Address) {
			return nil, fmt.Errorf("ProxyJump loop: %s", strings.Join(append(slices.Clone(path), hop.Address), " -> "))
		}
		if len(path) > maxJumpDepth {
			return nil, fmt.Errorf("ProxyJump chain deeper than %d: %s", maxJumpDepth, strings.Join(path, " -> "))
		}
		if err := f.Refuse(hop.Address); err != nil {
			return nil, err
		}
		hc := f.Lookup(sshconfig.Query{Host: hop.Address, User: hop.User, Port: hop.Port, DefaultUser: defaultUser})
		if i == 0 && hc.ProxyJump != "" {
			before, err := resolveJump(hc.ProxyJump, f, base, append(slices.Clone(path), hop.Address))
			if err != nil {
				return nil, err
			}
			out = append(out, before...)
		}
		out = append(out, resolveHop(hop, hc, base))
	}
	return out, nil
}

// resolveHop fills one hop from its ssh config settings and the target's.
func resolveHop(hop remote.Config, hc sshconfig.Host, base remote.Config) remote.Config {
	def := []string{"known_hosts", "connect_timeout"}
	if hop.User == "" {
		def = append(def, "user")
	}
	if hop.Port == 0 {
		def = append(def, "port")
	}
	hop.KnownHosts, hop.MoreKnownHosts = base.KnownHosts, base.MoreKnownHosts
	hop.ConnectTimeout, hop.AcceptNewHostKeys, hop.KeepNewHostKeys = base.ConnectTimeout, base.AcceptNewHostKeys, base.KeepNewHostKeys
	hop.IdentityFiles = append(slices.Clone(hc.IdentityFiles), identityOf(base.KeyPath)...)
	hop.IdentitiesOnly, hop.CertificateFiles = hc.IdentitiesOnly, hc.CertificateFiles
	applySSHConfig(&hop, hc, def, true)
	return hop
}

// identityOf is the inventory key as a list.
func identityOf(key string) []string {
	if key == "" {
		return nil
	}
	return []string{key}
}

// applySSHConfig takes from sc what the inventory left to kplay's defaults.
func applySSHConfig(cfg *remote.Config, sc sshconfig.Host, defaulted []string, addressUnset bool) {
	unset := func(k string) bool { return slices.Contains(defaulted, k) }
	if sc.HostName != "" && addressUnset {
		cfg.Address = sc.HostName
	}
	if sc.Port != 0 && unset("port") {
		cfg.Port = sc.Port
	}
	if sc.User != "" && unset("user") {
		cfg.User = sc.User
	}
	if sc.ConnectTimeout > 0 && unset("connect_timeout") {
		cfg.ConnectTimeout = sc.ConnectTimeout
	}
	if sc.ServerAliveInterval > 0 && cfg.KeepaliveInterval == 0 {
		cfg.KeepaliveInterval = sc.ServerAliveInterval
	}
	if sc.ServerAliveCountMax > 0 && cfg.KeepaliveMax == 0 {
		cfg.KeepaliveMax = sc.ServerAliveCountMax
	}
	if len(sc.KnownHostsFiles) > 0 && unset("known_hosts") {
		cfg.KnownHosts, cfg.MoreKnownHosts = sc.KnownHostsFiles[0], sc.KnownHostsFiles[1:]
	}
	if sc.StrictHostKeyChecking == "yes" {
		cfg.AcceptNewHostKeys = false // stricter only: nothing ever loosens checking
	}
}

// parseJump reads a ProxyJump value: [user@]host[:port], comma-separated,
// first hop first; "none" and "" mean no bastion.
func parseJump(s string) ([]remote.Config, error) {
	if s == "" || strings.EqualFold(s, "none") {
		return nil, nil
	}
	var hops []remote.Config
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "ssh://")
		var hop remote.Config
		if at := strings.LastIndexByte(part, '@'); at >= 0 {
			hop.User, part = part[:at], part[at+1:]
		}
		hop.Address = part
		if h, p, err := net.SplitHostPort(part); err == nil {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("proxy jump %q: bad port %q", s, p)
			}
			hop.Address, hop.Port = h, n
		}
		if hop.Address == "" || strings.ContainsAny(hop.Address+hop.User, " \t'\"$`;|&/") {
			return nil, fmt.Errorf("proxy jump %q: bad hop %q (want [user@]host[:port], comma-separated)", s, part)
		}
		hop.Name = "bastion " + part
		hops = append(hops, hop)
	}
	return hops, nil
}
