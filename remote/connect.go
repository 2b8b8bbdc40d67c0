package remote

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Connecting: the TCP connection (through the bastions, if any), the SSH
// handshake and its bounds, host keys and authentication settings.

// dialVia connects to cfg's host, over its bastion chain when it has one.
func dialVia(ctx context.Context, cfg Config, act *activity) (*ssh.Client, error) {
	via, err := cfg.Pool.via(ctx, cfg.Jump)
	if err != nil {
		return nil, &ConnectError{Host: cfg.Name, Phase: "connect", Err: fmt.Errorf("through %w", err)}
	}
	return connect(ctx, cfg, via, act)
}

// connect makes one SSH connection to cfg's host: over a TCP connection
// of its own, or over a channel of via (the last bastion). Reads are
// recorded in act, if not nil.
func connect(ctx context.Context, cfg Config, via *ssh.Client, act *activity) (*ssh.Client, error) {
	hostport := net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port))
	sshCfg, err := clientConfig(cfg, hostport)
	if err != nil {
		return nil, err
	}
	return handshake(ctx, cfg, hostport, sshCfg, via, act)
}

// withDefaults fills the config's zero values.
func (cfg Config) withDefaults() Config {
	if cfg.Port == 0 {
		cfg.Port = 22
	}
	if cfg.User == "" {
		cfg.User = "root"
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.KeepaliveInterval <= 0 {
		cfg.KeepaliveInterval = 5 * time.Second
	}
	if cfg.KeepaliveMax <= 0 {
		cfg.KeepaliveMax = 3
	}
	if cfg.KnownHosts == "" {
		cfg.KnownHosts = "~/.ssh/known_hosts"
	}
	return cfg
}

// clientConfig builds the SSH client config: the key auth, and host key
// verification against the known_hosts files with the host key
// algorithms they list.
func clientConfig(cfg Config, hostport string) (*ssh.ClientConfig, error) {
	k, err := knownHostsOf(cfg)
	if err != nil {
		return nil, &ConnectError{Host: cfg.Name, Phase: "known_hosts", Err: err}
	}
	auth, err := cfg.Pool.authMethods(cfg)
	if err != nil {
		return nil, &ConnectError{Host: cfg.Name, Phase: "auth", Err: err}
	}
	files, err := k.existing()
	if err != nil {
		return nil, &ConnectError{Host: cfg.Name, Phase: "known_hosts", Err: err}
	}
	if len(files) == 0 && !cfg.AcceptNewHostKeys {
		return nil, &ConnectError{Host: cfg.Name, Phase: "known_hosts", Err: fmt.Errorf("known_hosts %s: %w (host keys are always verified)",
			strings.Join(append([]string{k.path}, k.more...), ", "), fs.ErrNotExist)}
	}
	var algos []string
	var cb ssh.HostKeyCallback
	if len(files) > 0 {
		if algos, err = k.algorithms(files, hostport); err != nil {
			return nil, &ConnectError{Host: cfg.Name, Phase: "known_hosts", Err: err}
		}
		if cb, err = k.callback(files); err != nil {
			return nil, &ConnectError{Host: cfg.Name, Phase: "known_hosts", Err: err}
		}
	} else {
		// Trust on first use with no file yet: every key is new.
		cb = func(hostname string, _ net.Addr, key ssh.PublicKey) error {
			if !k.keepNew {
				return nil // a dry run writes nothing
			}
			return k.append(hostname, key)
		}
	}
	return &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(auth.signers...)},
		HostKeyCallback:   cb,
		HostKeyAlgorithms: algos,
		Timeout:           cfg.ConnectTimeout,
	}, nil
}

// knownHostsOf is cfg's host key verification: its files, ~ expanded.
func knownHostsOf(cfg Config) (knownHosts, error) {
	kh, err := ExpandHome(cfg.KnownHosts)
	if err != nil {
		return knownHosts{}, err
	}
	var more []string
	for _, p := range cfg.MoreKnownHosts {
		e, err := ExpandHome(p)
		if err != nil {
			return knownHosts{}, err
		}
		more = append(more, e)
	}
	mu := cfg.KnownHostsMu
	if mu == nil {
		mu = &sync.Mutex{}
	}
	return knownHosts{path: kh, more: more, cache: cfg.Pool.knownHostsCache(), acceptNew: cfg.AcceptNewHostKeys, keepNew: cfg.KeepNewHostKeys, mu: mu}, nil
}

// handshake connects (over TCP, or a channel of via) and runs the SSH
// handshake, both within cfg.ConnectTimeout and cancelled by ctx, and
// says which phase failed and, for auth, which keys were offered.
func handshake(ctx context.Context, cfg Config, hostport string, sshCfg *ssh.ClientConfig, via *ssh.Client, act *activity) (*ssh.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	conn, err := dialTCP(dctx, hostport, via)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &ConnectError{Host: cfg.Name, Phase: "connect", Err: ctx.Err()}
		}
		return nil, &ConnectError{Host: cfg.Name, Phase: "connect", Err: fmt.Errorf("%s%s: %w (connect_timeout %s)", hostport, viaText(cfg), err, cfg.ConnectTimeout)}
	}
	if act != nil {
		conn = activityConn{Conn: conn, a: act}
	}
	// Bound the handshake by closing the connection: a peer that accepts
	// TCP and never speaks SSH would otherwise hang NewClientConn forever
	// (and a channel through a bastion has no deadlines).
	stop := context.AfterFunc(dctx, func() { _ = conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, hostport, sshCfg)
	if !stop() && err == nil {
		c.Close()
		err = dctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, handshakeErr(ctx, dctx, cfg, hostport, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// dialTCP opens the connection an SSH handshake runs over.
func dialTCP(ctx context.Context, hostport string, via *ssh.Client) (net.Conn, error) {
	if via != nil {
		return via.DialContext(ctx, "tcp", hostport)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", hostport)
}

// viaText names the bastion chain, for errors.
func viaText(cfg Config) string {
	if len(cfg.Jump) == 0 {
		return ""
	}
	return " via " + chainKey(cfg.Jump)
}

// handshakeErr says why a handshake failed: host key, cancel, timeout,
// authentication (with the keys that were offered), or else.
func handshakeErr(ctx, dctx context.Context, cfg Config, hostport string, err error) error {
	var hk *HostKeyError
	switch {
	case errors.As(err, &hk):
		return &ConnectError{Host: cfg.Name, Phase: "host key", Err: hk}
	case ctx.Err() != nil:
		return &ConnectError{Host: cfg.Name, Phase: "handshake", Err: ctx.Err()}
	case dctx.Err() != nil || isTimeout(err):
		return &ConnectError{Host: cfg.Name, Phase: "handshake", Err: fmt.Errorf("%s%s: no SSH handshake within connect_timeout %s", hostport, viaText(cfg), cfg.ConnectTimeout)}
	case strings.Contains(err.Error(), "unable to authenticate"):
		plan, _ := cfg.Pool.authMethods(cfg)
		tried := "nothing"
		if plan != nil {
			tried = orNone(plan.tried)
		}
		return &ConnectError{Host: cfg.Name, Phase: "auth", Err: fmt.Errorf("%s@%s: authentication refused (publickey; tried: %s): %w", cfg.User, hostport, tried, err)}
	}
	return &ConnectError{Host: cfg.Name, Phase: "handshake", Err: fmt.Errorf("%s%s: %w", hostport, viaText(cfg), err)}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}
