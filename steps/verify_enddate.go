package steps

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// verifyEnddateParams is the YAML form of a verify_enddate step.
type verifyEnddateParams struct {
	Certs         []string `yaml:"certs"`
	MinDays       *int     `yaml:"min_days"`
	CheckKey      *bool    `yaml:"check_key"`
	KubernetesDir string   `yaml:"kubernetes_dir"`
}

// VerifyEnddate checks renewed certificates (read-only): end date, start
// date against the host clock, chain to the host's CA, and key match (on the host).
type VerifyEnddate struct {
	// Certs are the names to verify; nil means those renew_certs renewed in
	// this run or, when no renew_certs ran, every kubeadm leaf certificate present.
	Certs []string
	// MinDays is the least number of days each certificate must still be valid.
	MinDays int
	// CheckKey compares each certificate's public key with its private key's, on the host.
	CheckKey bool
	// KubeDir is the kubernetes dir.
	KubeDir string
}

// NewVerifyEnddate builds a verify_enddate step.
func NewVerifyEnddate(n *yaml.Node, x Expander) (Step, error) {
	var p verifyEnddateParams
	if err := decodeParams(n, &p, "verify_enddate"); err != nil {
		return nil, err
	}
	e := paramExpander{n: n, x: x, step: "verify_enddate"}
	s := &VerifyEnddate{MinDays: 300, CheckKey: boolOr(p.CheckKey, true)}
	if p.MinDays != nil {
		if *p.MinDays < 0 {
			return nil, e.errorf("min_days", "must not be negative")
		}
		s.MinDays = *p.MinDays
	}
	var err error
	if s.KubeDir, err = e.abs("kubernetes_dir", p.KubernetesDir, DefaultKubernetesDir); err != nil {
		return nil, err
	}
	certs, err := e.list("certs", p.Certs)
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		if !isRenewableName(c) {
			return nil, e.errorf("certs", "unknown certificate %q (known: %s)", c, strings.Join(renewableNames(), ", "))
		}
	}
	if len(certs) > 0 {
		s.Certs = certs
	}
	return s, nil
}

// targets returns the names to verify, or a skip reason.
func (s *VerifyEnddate) targets(t *Target, hc *hostCerts) ([]string, string) {
	if s.Certs != nil {
		return s.Certs, ""
	}
	if names, ok := renewedFact(t); ok {
		if len(names) == 0 {
			return nil, "renew_certs renewed nothing in this run"
		}
		return names, ""
	}
	var names []string
	for _, c := range hc.list().Renewable() {
		names = append(names, c.Name)
	}
	return names, ""
}

// Plan lists what would be verified and each certificate's current end date.
func (s *VerifyEnddate) Plan(ctx context.Context, t *Target) (Plan, error) {
	hc, err := readCerts(ctx, t, probeOpts{kubeDir: s.KubeDir, kubeletPKI: DefaultKubeletPKI}, t.Now())
	if err != nil {
		return Plan{}, err
	}
	names, skip := s.targets(t, hc)
	if skip != "" {
		return Plan{Summary: "would skip: " + skip}, nil
	}
	p := Plan{Summary: fmt.Sprintf("would verify %d certificates: not after now+%dd, not before the host clock, chain to the host CA%s",
		len(names), s.MinDays, map[bool]string{true: ", match their private keys (on the host)", false: ""}[s.CheckKey])}
	var data CertList
	for _, n := range names {
		if c, ok := hc.find(n); ok {
			data = append(data, c.info)
			p.Details = append(p.Details, fmt.Sprintf("%s: currently expires %s (%d days)", n, c.info.NotAfter.UTC().Format(time.RFC3339), c.info.DaysLeft))
		} else {
			p.Details = append(p.Details, n+": currently missing")
		}
	}
	p.Data = data
	return p, nil
}

// Apply verifies; it never changes the host.
func (s *VerifyEnddate) Apply(ctx context.Context, t *Target) (Result, error) {
	now := t.Now()
	hc, err := readCerts(ctx, t, probeOpts{kubeDir: s.KubeDir, kubeletPKI: DefaultKubeletPKI, keyDigests: s.CheckKey}, now)
	if err != nil {
		return Result{}, err
	}
	names, skip := s.targets(t, hc)
	if skip != "" {
		return Result{}, Skip("%s", skip)
	}
	if len(names) == 0 {
		return Result{}, fmt.Errorf("no kubeadm leaf certificates under %s to verify", s.KubeDir)
	}
	if s.CheckKey && hc.probe.noOpenSSL {
		return Result{}, fmt.Errorf("openssl is not installed on the host, so keys cannot be compared there; install it or set check_key: false")
	}
	_, cas := hc.caPool()
	minEnd := now.Add(time.Duration(s.MinDays) * 24 * time.Hour)
	var fails, details []string
	var data CertList
	for _, n := range names {
		c, ok := hc.find(n)
		if !ok {
			fails = append(fails, n+": missing")
			continue
		}
		data = append(data, c.info)
		if p := verifyOne(c, cas, minEnd, hc.probe, s.CheckKey); len(p) > 0 {
			fails = append(fails, fmt.Sprintf("%s (%s): %s", n, c.info.Path, strings.Join(p, "; ")))
			continue
		}
		details = append(details, fmt.Sprintf("ok %s: valid %s → %s (%d days), signed by %s%s", n,
			c.info.NotBefore.Format(time.RFC3339), c.info.NotAfter.Format(time.RFC3339), c.info.DaysLeft, c.info.CA,
			map[bool]string{true: ", key matches", false: ""}[s.CheckKey]))
	}
	r := Result{Data: data}
	if len(fails) > 0 {
		r.Details = append(details, fails...)
		return r, fmt.Errorf("%d of %d certificates failed verification: %s", len(fails), len(names), strings.Join(fails, " | "))
	}
	// Every certificate passed: no per-certificate lines; the message says
	// what was checked, the renew step's lines gave each new end date, and
	// Data (JSON) has every certificate.
	r.Message = fmt.Sprintf("%d certificates verified: each valid until at least %s (≥ %d days), started before the host clock, chains to its CA", len(names), minEnd.UTC().Format(time.RFC3339), s.MinDays)
	if s.CheckKey {
		r.Message += ", matches its key"
	}
	return r, nil
}

// verifyOne returns the problems of one certificate (none: it is good).
func verifyOne(c parsedCert, cas map[string][]*x509.Certificate, minEnd time.Time, p *probe, checkKey bool) []string {
	var probs []string
	if c.info.NotAfter.Before(minEnd) {
		probs = append(probs, fmt.Sprintf("expires %s, before %s", c.info.NotAfter.Format(time.RFC3339), minEnd.UTC().Format(time.RFC3339)))
	}
	if c.info.NotBefore.After(p.hostNow) {
		probs = append(probs, fmt.Sprintf("not valid before %s, after the host clock %s", c.info.NotBefore.Format(time.RFC3339), p.hostNow.UTC().Format(time.RFC3339)))
	}
	roots := x509.NewCertPool()
	for _, ca := range cas[c.info.CA] {
		roots.AddCert(ca)
	}
	if len(cas[c.info.CA]) == 0 {
		probs = append(probs, fmt.Sprintf("its CA %s is not on the host", c.info.CA))
	} else if _, err := c.cert.Verify(x509.VerifyOptions{
		Roots: roots, CurrentTime: p.hostNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		probs = append(probs, fmt.Sprintf("does not chain to CA %s: %v", c.info.CA, err))
	}
	if checkKey {
		d, ok := p.keyDigests[c.info.Path]
		sum := sha256.Sum256(c.cert.RawSubjectPublicKeyInfo)
		switch {
		case !ok || d == "":
			probs = append(probs, "its private key could not be read on the host")
		case d != hex.EncodeToString(sum[:]):
			probs = append(probs, "does not match its private key")
		}
	}
	return probs
}
