package runner

import (
	"context"
	"io/fs"
	"net"
	"sync"
)

// redialConn is a host's connection for the whole run, which a step can
// replace with a new one when the old was lost (steps.Reconnector): a
// restart whose SSH connection dropped must still put its manifests back.
// Later steps, rollbacks and the lock's release use the new connection.
type redialConn struct {
	mu   sync.RWMutex
	cur  Conn
	dial func(ctx context.Context) (Conn, error)
}

// newRedialConn wraps conn; dial opens a new connection to the same host.
func newRedialConn(conn Conn, dial func(ctx context.Context) (Conn, error)) *redialConn {
	return &redialConn{cur: conn, dial: dial}
}

func (c *redialConn) conn() Conn {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cur
}

// Name is the inventory name of the host.
func (c *redialConn) Name() string { return c.conn().Name() }

// Address is the address kplay dials.
func (c *redialConn) Address() string { return c.conn().Address() }

// Run runs a command on the current connection.
func (c *redialConn) Run(ctx context.Context, cmd string) ([]byte, error) {
	return c.conn().Run(ctx, cmd)
}

// RunInput runs a command with stdin on the current connection.
func (c *redialConn) RunInput(ctx context.Context, cmd string, in []byte) ([]byte, error) {
	return c.conn().RunInput(ctx, cmd, in)
}

// ReadFile reads a file over the current connection.
func (c *redialConn) ReadFile(ctx context.Context, p string) ([]byte, error) {
	return c.conn().ReadFile(ctx, p)
}

// WriteFile writes a file over the current connection.
func (c *redialConn) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	return c.conn().WriteFile(ctx, p, data, mode)
}

// DialContext opens a TCP connection from the host over the current connection.
func (c *redialConn) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return c.conn().DialContext(ctx, network, addr)
}

// RunAside starts a short command beside the steps' commands on the current
// connection, when that connection can (see asideRunner).
func (c *redialConn) RunAside(cmd string) (<-chan struct{}, bool) {
	if a, ok := c.conn().(asideRunner); ok {
		return a.RunAside(cmd)
	}
	return nil, false
}

// Close closes the current connection.
func (c *redialConn) Close() error { return c.conn().Close() }

// Reconnect opens a new connection to the host (one attempt, bounded by
// ctx) and, once it is up, makes it the current one and closes the old.
func (c *redialConn) Reconnect(ctx context.Context) error {
	n, err := c.dial(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	old := c.cur
	c.cur = n
	c.mu.Unlock()
	_ = old.Close() // already lost
	return nil
}
