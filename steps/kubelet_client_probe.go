package steps

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/kplay/kplay/internal/shellquote"
)

// renew_kubelet_client's read-only probe of the host and its parser.

// kubeletClientProbe is what the read-only probe found.
type kubeletClientProbe struct {
	hostNow    time.Time
	pkiDir     bool
	link       string // target of kubelet-client-current.pem, when it is a symlink
	isLink     bool
	current    *x509.Certificate // nil when there is no readable certificate
	ca         []*x509.Certificate
	caKey      bool
	openssl    bool
	hasConf    bool
	confMode   string
	confSum    string
	conf       []byte // kubelet.conf with its secrets redacted
	confUnsafe bool
}

// kubeletClientCmd is `sh -c SCRIPT sh ARGS…`, every argument quoted.
func kubeletClientCmd(script string, args ...string) string {
	return "sh -c " + shellquote.Quote(script) + " sh " + shellquote.QuoteAll(args...)
}

// currentPath is kubelet-client-current.pem.
func (s *RenewKubeletClient) currentPath() string {
	return path.Join(s.KubeletPKI, "kubelet-client-current.pem")
}

// probe runs the read-only probe and parses it.
func (s *RenewKubeletClient) probe(ctx context.Context, h Host) (*kubeletClientProbe, error) {
	m := newMarker()
	out, err := h.Run(ctx, kubeletClientCmd(kubeletClientProbeScript, s.KubeDir, s.KubeletPKI, s.KubeletConf, m))
	if err != nil {
		return nil, fmt.Errorf("reading the kubelet client certificate under %s: %w", s.KubeletPKI, err)
	}
	p, err := parseKubeletClientProbe(out, m)
	if err != nil {
		return nil, fmt.Errorf("reading the kubelet client certificate under %s: %w", s.KubeletPKI, err)
	}
	return p, nil
}

// kubeletClientPEMCerts parses every CERTIFICATE block of data.
func kubeletClientPEMCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out, nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

// parseKubeletClientProbe splits the probe's output (see the script) into its parts.
func parseKubeletClientProbe(out []byte, m string) (*kubeletClientProbe, error) {
	p := &kubeletClientProbe{}
	var cur *[]byte
	var current, ca, conf []byte
	hasCurrent := false
	for _, line := range strings.SplitAfter(string(out), "\n") {
		rest, ok := strings.CutPrefix(line, m+" ")
		if !ok {
			if cur != nil {
				*cur = append(*cur, line...)
			}
			continue
		}
		cur = nil
		word, arg, _ := strings.Cut(strings.TrimSuffix(rest, "\n"), " ")
		switch word {
		case "now":
			secs, err := strconv.ParseInt(strings.TrimSpace(arg), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("host clock: bad `date +%%s` output %q", arg)
			}
			p.hostNow = time.Unix(secs, 0)
		case "pkidir":
			p.pkiDir = true
		case "link":
			p.isLink, p.link = true, arg
		case "current":
			hasCurrent, cur = true, &current
		case "ca":
			cur = &ca
		case "cakey":
			p.caKey = true
		case "openssl":
			p.openssl = true
		case "confsum":
			p.confSum = arg
		case "conf":
			p.hasConf, p.confMode, cur = true, arg, &conf
		case "confunsafe":
			p.confUnsafe = true
		}
	}
	if p.hostNow.IsZero() {
		return nil, fmt.Errorf("the probe returned no host time (output %d bytes)", len(out))
	}
	if hasCurrent {
		certs, err := kubeletClientPEMCerts(current)
		if err != nil {
			return nil, fmt.Errorf("kubelet-client-current.pem: %w", err)
		}
		if len(certs) == 0 {
			return nil, errors.New("kubelet-client-current.pem holds no PEM certificate")
		}
		p.current = certs[0]
	}
	certs, err := kubeletClientPEMCerts(ca)
	if err != nil {
		return nil, fmt.Errorf("ca.crt: %w", err)
	}
	p.ca = certs
	if !p.confUnsafe {
		p.conf = conf
	}
	return p, nil
}
