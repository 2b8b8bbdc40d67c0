package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Pool is what the connections of one run share: one SSH connection (one
// TCP connection, one authentication) per bastion chain, whose channels
// carry every host behind it; the SSH agent; and the private keys loaded
// (so a passphrase is asked at most once). Close it when the run ends.
type Pool struct {
	// Passphrase returns the passphrase of an encrypted private key; nil
	// means KPLAY_KEY_PASSPHRASE, else a prompt when stdin is a terminal.
	Passphrase func(path string) ([]byte, error)

	mu       sync.Mutex
	bastions map[string]*bastion
	keys     map[string]*loadedKey
	agent    agent.ExtendedAgent
	agentErr error
	agentOK  bool
	closers  []func() error
	dialled  int     // bastion connections made
	closed   bool    // Close was called
	hostKeys khCache // known_hosts files, parsed once for every host of the run
}

// NewPool returns an empty pool.
func NewPool() *Pool {
	return &Pool{bastions: map[string]*bastion{}, keys: map[string]*loadedKey{}}
}

// knownHostsCache is the pool's parsed known_hosts files (nil without a pool).
func (p *Pool) knownHostsCache() *khCache {
	if p == nil {
		return nil
	}
	return &p.hostKeys
}

// bastion is one shared connection to the last hop of a chain; ready is
// closed once client or err is set, gone once the connection has ended
// (closed, dropped, or its keepalives unanswered).
type bastion struct {
	ready  chan struct{}
	gone   chan struct{}
	client *ssh.Client
	err    error
}

// lost reports whether the bastion's connection has ended.
func (b *bastion) lost() bool {
	select {
	case <-b.gone:
		return true
	default:
		return false
	}
}

// loadedKey is a private key file read once: its signer, or why not;
// done is closed once they are set.
type loadedKey struct {
	done   chan struct{}
	signer ssh.Signer
	err    error
}

// Close closes the bastion connections and the agent connection; no
// bastion is dialled after it.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for k, b := range p.bastions {
		select {
		case <-b.ready:
			if b.client != nil && !b.lost() {
				errs = append(errs, b.client.Close())
			}
		default:
		}
		delete(p.bastions, k)
	}
	for _, c := range p.closers {
		errs = append(errs, c())
	}
	p.closers = nil
	return errors.Join(errs...)
}

// Bastions returns how many bastion connections the pool has made (a
// bastion dialled again after its connection was lost counts twice).
func (p *Pool) Bastions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialled
}

// chainKey names a chain of hops: user@host:port of each, in order.
func chainKey(chain []Config) string {
	parts := make([]string, len(chain))
	for i, h := range chain {
		h = h.withDefaults()
		parts[i] = h.User + "@" + net.JoinHostPort(h.Address, strconv.Itoa(h.Port))
	}
	return strings.Join(parts, ",")
}

// via returns the SSH connection to the last hop of chain, opening it (and
// the hops before it) once for every host behind it; concurrent callers
// wait for the one that dials and share its connection or its error. A
// failure is not kept, and a connection that was lost is dialled again by
// the next caller (once, shared again), so a later dial, such as a host's
// reconnect, tries the bastion anew. Every hop's host key is verified on
// every dial.
func (p *Pool) via(ctx context.Context, chain []Config) (*ssh.Client, error) {
	if len(chain) == 0 {
		return nil, nil
	}
	key := chainKey(chain)
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, fmt.Errorf("%s: the run's connections are closed", key)
		}
		b, ok := p.bastions[key]
		if !ok || b.lost() {
			b = &bastion{ready: make(chan struct{}), gone: make(chan struct{})}
			p.bastions[key] = b
			p.mu.Unlock()
			return p.dialBastion(ctx, key, chain, b)
		}
		p.mu.Unlock()
		select {
		case <-b.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if b.err != nil || !b.lost() {
			return b.client, b.err
		}
		// Lost since it was opened: the next turn dials it again.
	}
}

// dialBastion opens b, the connection to chain's last hop, over the
// connection to the hops before it, and watches it: once it ends, it is
// dropped from the pool. A failed dial is dropped at once.
func (p *Pool) dialBastion(ctx context.Context, key string, chain []Config, b *bastion) (*ssh.Client, error) {
	hop := chain[len(chain)-1].withDefaults()
	hop.Jump, hop.Pool = nil, p
	prev, err := p.via(ctx, chain[:len(chain)-1])
	var act activity
	if err == nil {
		b.client, err = connect(ctx, hop, prev, &act) // its errors name the hop
	}
	forget := func() {
		p.mu.Lock()
		if p.bastions[key] == b {
			delete(p.bastions, key)
		}
		p.mu.Unlock()
	}
	if err != nil {
		b.err = err
		forget()
		close(b.ready)
		return nil, err
	}
	p.mu.Lock()
	p.dialled++
	p.mu.Unlock()
	go func() {
		_ = keepaliveLoop(b.client, &act, hop.KeepaliveInterval, hop.KeepaliveMax, b.gone, nil)
		_ = b.client.Close() // no answer: the connection is taken for lost
	}()
	go func() {
		_ = b.client.Wait()
		forget()
		close(b.gone)
	}()
	close(b.ready)
	return b.client, nil
}

// agentClient returns the SSH agent of SSH_AUTH_SOCK, connected once, or nil.
func (p *Pool) agentClient() agent.ExtendedAgent {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.agentOK {
		return p.agent
	}
	p.agentOK = true
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		p.agentErr = err
		return nil
	}
	p.closers = append(p.closers, conn.Close)
	p.agent = agent.NewClient(conn)
	return p.agent
}
