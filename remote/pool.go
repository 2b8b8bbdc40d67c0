package remote

import (
	"context"
	"errors"
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
// closed once client or err is set.
type bastion struct {
	ready  chan struct{}
	client *ssh.Client
	err    error
}

// loadedKey is a private key file read once: its signer, or why not;
// done is closed once they are set.
type loadedKey struct {
	done   chan struct{}
	signer ssh.Signer
	err    error
}

// Close closes the bastion connections and the agent connection.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for k, b := range p.bastions {
		select {
		case <-b.ready:
			if b.client != nil {
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

// Bastions returns how many bastion connections the pool has made.
func (p *Pool) Bastions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, b := range p.bastions {
		select {
		case <-b.ready:
			if b.client != nil {
				n++
			}
		default:
		}
	}
	return n
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
// the hops before it) once for the whole run; concurrent callers wait for
// the one that dials. A failure is kept, so a dead bastion is dialled once,
// unless it was the caller's context that ended.
func (p *Pool) via(ctx context.Context, chain []Config) (*ssh.Client, error) {
	if len(chain) == 0 {
		return nil, nil
	}
	key := chainKey(chain)
	p.mu.Lock()
	b, ok := p.bastions[key]
	if ok {
		p.mu.Unlock()
		select {
		case <-b.ready:
			return b.client, b.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	b = &bastion{ready: make(chan struct{})}
	p.bastions[key] = b
	p.mu.Unlock()

	prev, err := p.via(ctx, chain[:len(chain)-1])
	if err == nil {
		hop := chain[len(chain)-1].withDefaults()
		hop.Jump, hop.Pool = nil, p
		b.client, err = connect(ctx, hop, prev, nil) // its errors name the hop

	}
	b.err = err
	if err != nil && ctx.Err() != nil {
		p.mu.Lock()
		delete(p.bastions, key) // the next caller tries again
		p.mu.Unlock()
	}
	close(b.ready)
	return b.client, b.err
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
