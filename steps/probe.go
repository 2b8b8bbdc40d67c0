package steps

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	_ "embed" // probe.sh
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/kplay/kplay/internal/shellquote"
)

// probeOpts says what one probe of a host's certificates reads.
type probeOpts struct {
	kubeDir    string
	kubeletPKI string
	// keyDigests also prints, per leaf certificate, the SHA-256 of the public
	// key derived on the host from its private key (the key never leaves).
	keyDigests bool
	// config, when set, is a kubeadm config file whose certificateValidityPeriod is printed.
	config string
}

// probeFile is one file section of a probe's output.
type probeFile struct {
	kind CertKind
	path string
	data []byte
}

// probe is what one read of a host's certificates returned.
type probe struct {
	hostNow    time.Time
	files      []probeFile
	missing    []probeFile
	caKeys     map[string]bool   // path → present
	keyDigests map[string]string // certificate path → hex SHA-256 of the SPKI derived from its key, "" if that failed
	noOpenSSL  bool
	validity   string // certificateValidityPeriod from the config, if any
}

// kubeconfigFilter is an awk program that drops secrets (client-key-data,
// token, password, with any continuation lines) from a kubeconfig on the host.
const kubeconfigFilter = `{ match($0, /^[ \t]*/); ind = RLENGTH }
skip && ind > kind { next }
{ skip = 0 }
/^[ \t]*(- )?(client-key-data|token|password):/ { skip = 1; kind = ind; next }
{ print }`

// probeSh is scripts/probe.sh: the one command that reads every certificate
// of a host. Its parameters are positional arguments (see probeScript).
//
//go:embed scripts/probe.sh
var probeSh string

// probeScript builds the one command that reads every certificate of a host:
// PEM certificate blocks only (never keys), kubeconfigs without secrets.
// Every parameter is a quoted positional argument of scripts/probe.sh.
func probeScript(o probeOpts, m string) string {
	digests := "0"
	if o.keyDigests {
		digests = "1"
	}
	return sh(probeSh) + " " + shellquote.QuoteAll("sh", o.kubeDir, o.kubeletPKI, m, digests, o.config, kubeconfigFilter)
}

// emptySHA256 is the digest of no input: a failed key derivation on the host.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// parseProbe splits a probe's output into its sections.
func parseProbe(out []byte, m string) (*probe, error) {
	p := &probe{caKeys: map[string]bool{}, keyDigests: map[string]string{}}
	var cur *probeFile
	flush := func() {
		if cur != nil {
			p.files = append(p.files, *cur)
			cur = nil
		}
	}
	for _, line := range strings.SplitAfter(string(out), "\n") {
		rest, ok := strings.CutPrefix(line, m+" ")
		if !ok {
			if cur != nil {
				cur.data = append(cur.data, line...)
			}
			continue
		}
		flush()
		rest = strings.TrimSuffix(rest, "\n")
		word, arg, _ := strings.Cut(rest, " ")
		switch word {
		case "now":
			secs, err := strconv.ParseInt(strings.TrimSpace(arg), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("host clock: bad `date +%%s` output %q", arg)
			}
			p.hostNow = time.Unix(secs, 0)
		case "file", "missing":
			kind, fp, _ := strings.Cut(arg, " ")
			f := probeFile{kind: CertKind(kind), path: fp}
			if word == "missing" {
				p.missing = append(p.missing, f)
			} else {
				cur = &f
			}
		case "cakey":
			yes, fp, _ := strings.Cut(arg, " ")
			p.caKeys[fp] = yes == "yes"
		case "keydigest":
			d, fp, _ := strings.Cut(arg, " ")
			if d == emptySHA256 {
				d = ""
			}
			p.keyDigests[fp] = d
		case "noopenssl":
			p.noOpenSSL = true
		case "validity":
			p.validity = strings.TrimSpace(arg)
		}
	}
	flush()
	if p.hostNow.IsZero() {
		return nil, fmt.Errorf("certificate probe returned no host time (output %d bytes)", len(out))
	}
	return p, nil
}

// parsedCert is one certificate with the file it came from.
type parsedCert struct {
	info CertInfo
	cert *x509.Certificate
	// all is every certificate in the file (a CA file may be a bundle).
	all []*x509.Certificate
}

// hostCerts is a parsed probe: the certificates of one host.
type hostCerts struct {
	probe *probe
	certs []parsedCert
}

// list returns the CertInfo of every certificate, soonest expiry first.
func (h *hostCerts) list() CertList {
	l := make(CertList, 0, len(h.certs))
	for _, c := range h.certs {
		l = append(l, c.info)
	}
	l.SortByExpiry()
	return l
}

// find returns the parsed certificate named name.
func (h *hostCerts) find(name string) (parsedCert, bool) {
	for _, c := range h.certs {
		if c.info.Name == name && !c.info.Missing {
			return c, true
		}
	}
	return parsedCert{}, false
}

// caPool returns a pool of every CA certificate found on the host, and the CAs by name.
func (h *hostCerts) caPool() (*x509.CertPool, map[string][]*x509.Certificate) {
	pool := x509.NewCertPool()
	byName := map[string][]*x509.Certificate{}
	for _, c := range h.certs {
		if c.info.Kind != KindCA || c.info.Missing {
			continue
		}
		for _, x := range c.all {
			if x.IsCA {
				pool.AddCert(x)
				byName[c.info.Name] = append(byName[c.info.Name], x)
			}
		}
	}
	return pool, byName
}

// readCerts reads and parses every certificate kubeadm manages on the host,
// with ONE remote command. now is the controller's clock (for DaysLeft).
func readCerts(ctx context.Context, h Host, o probeOpts, now time.Time) (*hostCerts, error) {
	m := newMarker()
	cmd := probeScript(o, m)
	out, err := h.Run(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("reading certificates under %s: %w", o.kubeDir, err)
	}
	p, err := parseProbe(out, m)
	if err != nil {
		return nil, fmt.Errorf("reading certificates under %s: %w", o.kubeDir, err)
	}
	hc := &hostCerts{probe: p}
	for _, f := range p.files {
		pc, err := parseCertFile(f, o.kubeDir)
		if err != nil {
			return nil, err
		}
		pc.info.Host = h.Name()
		pc.info.setAge(now)
		hc.certs = append(hc.certs, pc)
	}
	for _, f := range p.missing {
		name, spec := certName(f.kind, f.path, o.kubeDir)
		hc.certs = append(hc.certs, parsedCert{info: CertInfo{
			Host: h.Name(), Name: name, Path: f.path, Kind: f.kind, CA: spec.ca, Missing: true,
			Renewable: f.kind == KindKubeconfig,
		}})
	}
	// Known pki certificates that are absent (for example etcd's when etcd is external).
	for _, s := range kubeadmCerts() {
		if s.kind != KindPKI && s.kind != KindCA {
			continue
		}
		fp := path.Join(o.kubeDir, s.rel)
		found := false
		for _, c := range hc.certs {
			if c.info.Path == fp {
				found = true
				break
			}
		}
		if !found {
			hc.certs = append(hc.certs, parsedCert{info: CertInfo{
				Host: h.Name(), Name: s.name, Path: fp, Kind: s.kind, CA: s.ca, Missing: true,
				Renewable: s.kind == KindPKI, IsCA: s.kind == KindCA,
			}})
		}
	}
	resolveCAs(hc)
	return hc, nil
}

// parseCertFile parses one probed file: PEM certificates, or a filtered kubeconfig.
func parseCertFile(f probeFile, kubeDir string) (parsedCert, error) {
	data := f.data
	if f.kind == KindKubeconfig {
		d, err := kubeconfigClientCert(data)
		if err != nil {
			return parsedCert{}, fmt.Errorf("kubeconfig %s: %w", f.path, err)
		}
		data = d
	}
	var all []*x509.Certificate
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return parsedCert{}, fmt.Errorf("certificate %s: %w", f.path, err)
		}
		all = append(all, c)
	}
	if len(all) == 0 {
		return parsedCert{}, fmt.Errorf("certificate %s: no PEM certificate found", f.path)
	}
	c := all[0]
	name, spec := certName(f.kind, f.path, kubeDir)
	kind := f.kind
	if kind == KindPKI && c.IsCA {
		kind = KindCA
	}
	sum := sha256.Sum256(c.Raw)
	info := CertInfo{
		Name: name, Path: f.path, Kind: kind,
		Subject: c.Subject.String(), Issuer: c.Issuer.String(),
		CA: spec.ca, NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
		IsCA: c.IsCA, SHA256: hex.EncodeToString(sum[:]),
		Renewable: (kind == KindPKI || kind == KindKubeconfig) && isRenewableName(name),
	}
	return parsedCert{info: info, cert: c, all: all}, nil
}

// resolveCAs fills CertInfo.CA for certificates kubeadm does not know, by
// finding the host CA whose key signed them.
func resolveCAs(hc *hostCerts) {
	_, cas := hc.caPool()
	for i := range hc.certs {
		c := &hc.certs[i]
		if c.info.Missing || c.info.CA != "" || c.info.Kind == KindCA || c.cert == nil {
			continue
		}
		for name, list := range cas {
			for _, ca := range list {
				if c.cert.CheckSignatureFrom(ca) == nil {
					c.info.CA = name
				}
			}
		}
		if c.info.CA == "" {
			c.info.CA = c.cert.Issuer.CommonName
		}
	}
}
