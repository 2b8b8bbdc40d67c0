package remote

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/kplay/kplay/internal/hostexec"
	"golang.org/x/crypto/ssh"
)

// DialContext opens a TCP connection from the host to addr over this SSH
// connection (a direct-tcpip channel): the host resolves and routes addr,
// so a port closed to the controller is still reached. A server that
// forbids forwarding gives an error wrapping hostexec.ErrForwardingRefused.
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return nil, fmt.Errorf("%s: dialing %s %s through SSH: only tcp is forwarded", c.cfg.Name, network, addr)
	}
	conn, err := c.client.DialContext(ctx, "tcp", addr)
	if err == nil {
		return conn, nil
	}
	var oe *ssh.OpenChannelError
	if errors.As(err, &oe) && oe.Reason == ssh.Prohibited {
		return nil, fmt.Errorf("%s: dialing %s through SSH: %w (%v)", c.cfg.Name, addr, hostexec.ErrForwardingRefused, err)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: dialing %s through SSH: %w", c.cfg.Name, addr, ctx.Err())
	}
	return nil, fmt.Errorf("%s: dialing %s through SSH: %w", c.cfg.Name, addr, c.connErr("opening a direct-tcpip channel", err))
}
