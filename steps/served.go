package steps

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed" // scripts/served_chain.sh
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/kplay/kplay/internal/hostexec"
	"github.com/kplay/kplay/internal/retry"
	"github.com/kplay/kplay/internal/shellquote"
)

// servedChainSh is scripts/served_chain.sh: openssl s_client on the host.
//
//go:embed scripts/served_chain.sh
var servedChainSh string

// endpoint is a TLS port of a component and the certificate it must serve.
type endpoint struct {
	// cert is the kubeadm name of the certificate on disk (apiserver, etcd-server, etcd-peer).
	cert    string
	address string
	port    int
}

// addr is host:port.
func (e endpoint) addr() string { return net.JoinHostPort(e.address, strconv.Itoa(e.port)) }

// servedError is a definite answer that the served certificate is wrong.
type servedError struct{ msg string }

// Error returns the message.
func (e *servedError) Error() string { return e.msg }

// notMadeError is a check that could not be made at all (no way to reach
// the port, no tool on the host): it says nothing about the certificate,
// so it is reported as not made and never fails a step by itself.
type notMadeError struct{ msg string }

// Error says why the check was not made.
func (e *notMadeError) Error() string { return e.msg }

// isNotMade reports whether err is a check that could not be made.
func isNotMade(err error) bool {
	var nm *notMadeError
	return errors.As(err, &nm)
}

// servedChecker compares what a port serves with the certificate on disk:
// by a TLS handshake through the host's SSH connection (falling back to
// openssl on the host when the host forbids forwarding), from the
// controller's own network, or by openssl on the host.
type servedChecker struct {
	// how is ServeCheckSSH, ServeCheckController or ServeCheckHost.
	how      string
	timeout  time.Duration
	interval time.Duration
}

// compareRetry retries compare while the port gives no certificate at all
// (it is starting); a wrong certificate is a definite answer at once.
func (sc servedChecker) compareRetry(ctx context.Context, t *Target, name string, ep endpoint, hc *hostCerts) (string, error) {
	var msg string
	var mismatch error
	err := retry.Poll(ctx, sc.timeout, sc.interval, fmt.Sprintf("a TLS handshake with %s on %s", name, ep.addr()), func(ctx context.Context) (bool, string, error) {
		m, err := sc.compare(ctx, t, name, ep, hc)
		var se *servedError
		if errors.As(err, &se) || isNotMade(err) {
			mismatch = err
			return true, "", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		msg = m
		return true, "", nil
	})
	if mismatch != nil {
		return "", mismatch
	}
	return msg, err
}

// compare fetches the certificate the endpoint serves and compares it with
// the one on disk; it must also chain to the host's CA.
func (sc servedChecker) compare(ctx context.Context, t *Target, name string, ep endpoint, hc *hostCerts) (string, error) {
	disk, ok := hc.find(ep.cert)
	if !ok {
		return "", fmt.Errorf("%s: certificate %s not found on disk", name, ep.cert)
	}
	addr := ep.addr()
	chain, err := sc.chain(ctx, t, addr)
	if err != nil {
		return "", err
	}
	served := chain[0]
	fp := fingerprint(served.Raw)
	if fp != disk.info.SHA256 {
		return "", &servedError{fmt.Sprintf("%s on %s serves certificate sha256 %s (not after %s), but %s on disk is sha256 %s (not after %s): it was not restarted onto the new certificate",
			name, addr, fp[:16], served.NotAfter.UTC().Format(time.RFC3339), disk.info.Path, disk.info.SHA256[:16], disk.info.NotAfter.Format(time.RFC3339))}
	}
	_, cas := hc.caPool()
	roots := x509.NewCertPool()
	for _, ca := range cas[disk.info.CA] {
		roots.AddCert(ca)
	}
	inter := x509.NewCertPool()
	for _, x := range chain[1:] {
		inter.AddCert(x)
	}
	usage := x509.ExtKeyUsageServerAuth
	if _, err := served.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: hc.probe.hostNow, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return "", &servedError{fmt.Sprintf("%s on %s serves a certificate that does not verify against CA %s: %v", name, addr, disk.info.CA, err)}
	}
	return fmt.Sprintf("%s serves %s (sha256 %s…, not after %s)", ep.addr(), disk.info.Path, fp[:16], served.NotAfter.UTC().Format(time.RFC3339)), nil
}

// chain fetches the certificates served on addr the checker's way.
func (sc servedChecker) chain(ctx context.Context, t *Target, addr string) ([]*x509.Certificate, error) {
	switch sc.how {
	case ServeCheckHost:
		return servedChainFromHost(ctx, t, addr)
	case ServeCheckController:
		var d net.Dialer
		chain, err := servedChain(ctx, d.DialContext, addr, "from the controller")
		if err != nil && unreachable(ctx, err) {
			return nil, &notMadeError{fmt.Sprintf("served certificate on %s not checked: the controller cannot reach it (%v); use serve_check: ssh", addr, err)}
		}
		return chain, err
	}
	chain, err := servedChain(ctx, t.DialContext, addr, "through SSH")
	if errors.Is(err, hostexec.ErrForwardingRefused) {
		return servedChainFromHost(ctx, t, addr)
	}
	return chain, err
}

// unreachable reports whether a dial failed for want of a route or by a
// silent drop (a timeout while ctx was still alive), not because nothing
// listens (refused, as while a component restarts): waiting will not help.
func unreachable(ctx context.Context, err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout()
}

// dialFunc opens a TCP connection: the controller's own, or one the host
// makes through its SSH connection.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// servedChain does a TLS handshake over a connection from dial and returns
// the server's certificates. Verification is done by the caller against the
// host's CA; a server that then rejects our lack of a client certificate is fine.
func servedChain(ctx context.Context, dial dialFunc, addr, via string) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	cfg := &tls.Config{
		InsecureSkipVerify: true, // only to capture the chain; verified against the host CA by the caller
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			for _, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				chain = append(chain, c)
			}
			return nil
		},
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && net.ParseIP(host) == nil {
		cfg.ServerName = host // SNI, as a tls.Dialer would send
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	raw, err := dial(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("TLS handshake with %s %s: %w", addr, via, err)
	}
	defer raw.Close()
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn := tls.Client(raw, cfg)
	err = conn.HandshakeContext(hctx)
	if len(chain) > 0 {
		return chain, nil
	}
	if err == nil {
		err = errors.New("no certificate")
	}
	return nil, fmt.Errorf("TLS handshake with %s %s: %w", addr, via, err)
}

// servedChainFromHost runs `openssl s_client` on the host and parses the
// certificates it prints (public data only).
func servedChainFromHost(ctx context.Context, t *Target, addr string) ([]*x509.Certificate, error) {
	out, err := t.Run(ctx, shellquote.Script(servedChainSh, addr))
	if st, ok := hostexec.ExitStatus(err); ok && st == 127 {
		return nil, &notMadeError{fmt.Sprintf("served certificate on %s not checked: no way from the host (%v)", addr, err)}
	}
	if err != nil {
		return nil, fmt.Errorf("openssl s_client -connect %s on the host: %w", addr, err)
	}
	var chain []*x509.Certificate
	for {
		var b *pem.Block
		b, out = pem.Decode(out)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate served on %s: %w", addr, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("no TLS certificate served on %s (seen from the host)", addr)
	}
	return chain, nil
}
