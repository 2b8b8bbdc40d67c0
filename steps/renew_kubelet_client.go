package steps

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	_ "embed" // the step's shell scripts
	"encoding/hex"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/shellquote"
	"github.com/kplay/kplay/internal/yamlx"
)

// The renew_kubelet_client step recovers a kubelet client certificate that
// the kubelet failed to rotate (kubeadm's troubleshooting guide, "Kubelet
// client certificate rotation fails"): a new credential for
// system:node:NODE in group system:nodes, signed by the cluster CA whose
// key is on the (control-plane) host, kubelet-client-current.pem pointed at
// it, kubelet.conf pointed at that file, and the kubelet restarted. The key
// is made on the host and never leaves it; only certificates, a kubelet.conf
// with its secrets redacted, and digests come back.

// kubeletClientProbeScript is the step's read-only probe.
//
//go:embed scripts/renew_kubelet_client_probe.sh
var kubeletClientProbeScript string

// kubeletClientIssueScript makes the new certificate and switches to it.
//
//go:embed scripts/renew_kubelet_client.sh
var kubeletClientIssueScript string

// kubeletClientRestoreLib defines rkc_restore, shared by the issue script, the undo and restore.sh.
//
//go:embed scripts/renew_kubelet_client_restore.sh
var kubeletClientRestoreLib string

// Exit statuses of the issue script (see scripts/renew_kubelet_client.sh).
const (
	kubeletClientExitRestored     = 20 // failed during the switch; everything put back
	kubeletClientExitRestoreFails = 21 // failed during the switch; putting back failed too
)

// kubeletClientRedacted starts the key the probe puts in place of a secret
// entry of kubelet.conf (client-key-data, token, password).
const kubeletClientRedacted = "kplay-redacted-"

// renewKubeletClientParams is the YAML form of a renew_kubelet_client step.
type renewKubeletClientParams struct {
	Within        *yamlx.Duration `yaml:"within"`
	NodeName      string          `yaml:"node_name"`
	KubernetesDir string          `yaml:"kubernetes_dir"`
	KubeletPKI    string          `yaml:"kubelet_pki"`
	KubeletConf   string          `yaml:"kubelet_conf"`
	Restart       string          `yaml:"restart"`
	Validity      *yamlx.Duration `yaml:"validity"`
}

// RenewKubeletClient issues a new kubelet client certificate on the host,
// signed there by the cluster CA, when the current one has expired or
// expires within Within, and switches the kubelet to it.
type RenewKubeletClient struct {
	// Within: act only when the certificate is missing, expired, or expires within it.
	Within time.Duration
	// NodeName is the node's name (CN system:node:NAME); "" means the current
	// certificate's, else the host's inventory name.
	NodeName string
	// KubeDir holds pki/ca.crt and pki/ca.key.
	KubeDir string
	// KubeletPKI holds kubelet-client-current.pem.
	KubeletPKI string
	// KubeletConf is the kubelet's kubeconfig.
	KubeletConf string
	// Restart is the shell command that restarts the kubelet.
	Restart string
	// Validity is the new certificate's validity, whole days (cut to the CA's expiry).
	Validity time.Duration
}

// NewRenewKubeletClient builds a renew_kubelet_client step.
func NewRenewKubeletClient(n *yaml.Node, x Expander) (Step, error) {
	const step = "renew_kubelet_client"
	var p renewKubeletClientParams
	if err := decodeParams(n, &p, step); err != nil {
		return nil, err
	}
	e := paramExpander{n: n, x: x, step: step}
	s := &RenewKubeletClient{
		Within:   dur(p.Within, yamlx.Duration(7*24*time.Hour)).D(),
		Validity: dur(p.Validity, yamlx.Duration(defaultValidity)).D(),
	}
	if s.Validity < 24*time.Hour || s.Validity%(24*time.Hour) != 0 {
		return nil, e.errorf("validity", "must be a whole number of days, at least 1d (openssl -days), not %s", yamlx.Duration(s.Validity))
	}
	var err error
	if s.KubeDir, err = e.abs("kubernetes_dir", p.KubernetesDir, DefaultKubernetesDir); err != nil {
		return nil, err
	}
	if s.KubeletPKI, err = e.abs("kubelet_pki", p.KubeletPKI, DefaultKubeletPKI); err != nil {
		return nil, err
	}
	if s.KubeletConf, err = e.abs("kubelet_conf", p.KubeletConf, path.Join(s.KubeDir, "kubelet.conf")); err != nil {
		return nil, err
	}
	if s.NodeName, err = e.text("node_name", p.NodeName, ""); err != nil {
		return nil, err
	}
	if s.NodeName != "" {
		if why := kubeletClientBadNodeName(s.NodeName); why != "" {
			return nil, e.errorf("node_name", "%q is not a node name: %s", s.NodeName, why)
		}
	}
	s.Restart = "systemctl restart kubelet"
	if p.Restart != "" {
		if s.Restart, err = x.Shell(p.Restart); err != nil {
			return nil, posErr(valueNode(n, "restart"), yamlx.Join(step, "restart"), err)
		}
	}
	return s, nil
}

// kubeletClientBadNodeName says why name is not a Kubernetes node name (a DNS-1123
// subdomain: lower-case letters, digits, '-' and '.', at most 253 bytes,
// each label starting and ending with a letter or digit), or "".
func kubeletClientBadNodeName(name string) string {
	if name == "" || len(name) > 253 {
		return "want 1 to 253 characters"
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return "each dot-separated label must have 1 to 63 characters"
		}
		for i, r := range label {
			alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
			if !alnum && (r != '-' || i == 0 || i == len(label)-1) {
				return "want lower-case letters, digits, '-' and '.', each label starting and ending with a letter or digit"
			}
		}
	}
	return ""
}

// KubeletClientRenewal is the Data of a renew_kubelet_client step: the
// certificate before and (once renewed) after.
type KubeletClientRenewal struct {
	// Host is the inventory name of the host.
	Host string `json:"host"`
	// Node is the node name: the certificate's CN is system:node:NODE.
	Node string `json:"node,omitempty"`
	// Path is kubelet-client-current.pem.
	Path string `json:"path"`
	// OldSubject is the subject of the certificate found, if any.
	OldSubject string `json:"old_subject,omitempty"`
	// OldNotAfter is its expiry, if there was one.
	OldNotAfter *time.Time `json:"old_not_after,omitempty"`
	// Subject is the new certificate's subject.
	Subject string `json:"subject,omitempty"`
	// NewNotAfter is the new certificate's expiry (in a plan: about when it would expire).
	NewNotAfter *time.Time `json:"new_not_after,omitempty"`
	// File is the new kubelet-client-DATE.pem.
	File string `json:"file,omitempty"`
	// PreviousTarget is where kubelet-client-current.pem pointed before ("" if it was no symlink).
	PreviousTarget string `json:"previous_target,omitempty"`
	// KubeletConf is the kubeconfig pointed at Path.
	KubeletConf string `json:"kubelet_conf"`
	// Backup is the directory on the host holding the previous kubelet.conf, link and restore.sh.
	Backup string `json:"backup,omitempty"`
	// SHA256 is the fingerprint of the new certificate.
	SHA256 string `json:"sha256,omitempty"`
}

// kubeletClientPlan is what the step decided, read-only, on one host.
type kubeletClientPlan struct {
	probe    *kubeletClientProbe
	skip     string // non-empty: nothing to do, and why
	node     string
	nodeFrom string
	days     int    // validity of the new certificate, in days
	clamped  string // non-empty: the validity was cut to the CA's expiry, and why
	conf     []byte // the new kubelet.conf, or nil to leave it as it is
	confNote string // what happens to kubelet.conf
	info     KubeletClientRenewal
}

// oldState describes the current certificate in words.
func (kp *kubeletClientPlan) oldState(now time.Time) string {
	c := kp.probe.current
	if c == nil {
		return "missing"
	}
	if !c.NotAfter.After(now) {
		return fmt.Sprintf("EXPIRED %s (%d days ago)", c.NotAfter.UTC().Format(time.RFC3339), int(now.Sub(c.NotAfter)/(24*time.Hour)))
	}
	return fmt.Sprintf("expires %s (in %d days)", c.NotAfter.UTC().Format(time.RFC3339), daysLeft(c.NotAfter, now))
}

// inspect probes the host and decides, read-only, what Apply would do; it
// returns an error for the cases the step refuses.
func (s *RenewKubeletClient) inspect(ctx context.Context, t *Target) (*kubeletClientPlan, error) {
	p, err := s.probe(ctx, t)
	if err != nil {
		return nil, err
	}
	now := t.Now()
	kp := &kubeletClientPlan{probe: p, info: KubeletClientRenewal{Host: t.Name(), Path: s.currentPath(), KubeletConf: s.KubeletConf}}
	if p.isLink {
		kp.info.PreviousTarget = p.link
	}
	if c := p.current; c != nil {
		na := c.NotAfter.UTC()
		kp.info.OldSubject, kp.info.OldNotAfter = c.Subject.String(), &na
		if c.NotAfter.After(now.Add(s.Within)) {
			kp.skip = fmt.Sprintf("the kubelet client certificate (%s) is valid until %s (%d days), beyond within %s; kubelet rotates it itself",
				c.Subject, na.Format(time.RFC3339), daysLeft(c.NotAfter, now), yamlx.Duration(s.Within))
			return kp, nil
		}
	}
	kp.node, kp.nodeFrom = s.nodeName(t, p)
	kp.info.Node = kp.node
	kp.info.Subject = "CN=system:node:" + kp.node + ",O=system:nodes"

	var problems []string
	if why := kubeletClientBadNodeName(kp.node); why != "" {
		problems = append(problems, fmt.Sprintf("node name %q (from %s) is not a node name (%s): set node_name", kp.node, kp.nodeFrom, why))
	}
	problems = append(problems, s.signingProblems(p)...)
	switch {
	case !p.hasConf:
		problems = append(problems, fmt.Sprintf("%s does not exist (is the kubelet set up on this host?)", s.KubeletConf))
	case p.confUnsafe:
		problems = append(problems, fmt.Sprintf("%s is not block-style YAML whose secrets kplay can leave on the host (JSON or flow style?): point its user at %s by hand", s.KubeletConf, s.currentPath()))
	default:
		conf, note, err := kubeletClientConf(p.conf, s.currentPath())
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", s.KubeletConf, err))
		}
		kp.conf, kp.confNote = conf, note
	}
	kp.days = int(s.Validity / (24 * time.Hour))
	if len(p.ca) > 0 {
		ca := p.ca[0]
		caDays := int(ca.NotAfter.Sub(p.hostNow) / (24 * time.Hour))
		switch {
		case caDays < 1:
			problems = append(problems, fmt.Sprintf("the CA (%s) expires %s, within a day: renew the CA first", ca.Subject, ca.NotAfter.UTC().Format(time.RFC3339)))
		case caDays < kp.days:
			kp.clamped = fmt.Sprintf("validity cut from %dd to %dd: the CA expires %s (kube-controller-manager's signer cuts it the same way)",
				kp.days, caDays, ca.NotAfter.UTC().Format(time.RFC3339))
			kp.days = caDays
		}
	}
	na := p.hostNow.Add(time.Duration(kp.days) * 24 * time.Hour).UTC()
	kp.info.NewNotAfter = &na
	if len(problems) > 0 {
		return kp, fmt.Errorf("refusing to renew the kubelet client certificate on this host, nothing was changed: %s", strings.Join(problems, "; "))
	}
	return kp, nil
}

// nodeName chooses the node the new certificate is for, and says where the
// name came from: node_name, else the current certificate's CN, else the
// inventory name.
func (s *RenewKubeletClient) nodeName(t *Target, p *kubeletClientProbe) (node, from string) {
	node, from = t.Name(), "the inventory name"
	if p.current != nil {
		if n, ok := strings.CutPrefix(p.current.Subject.CommonName, "system:node:"); ok {
			node, from = n, "the current certificate's CN"
		}
	}
	if s.NodeName != "" {
		node, from = s.NodeName, "node_name"
	}
	return node, from
}

// signingProblems says what the host lacks to make and sign the new
// certificate itself: the CA key and certificate, openssl, the kubelet's
// pki directory.
func (s *RenewKubeletClient) signingProblems(p *kubeletClientProbe) []string {
	var problems []string
	caKey := path.Join(s.KubeDir, "pki", "ca.key")
	caCrt := path.Join(s.KubeDir, "pki", "ca.crt")
	switch {
	case !p.caKey:
		problems = append(problems, fmt.Sprintf("external CA: %s is absent, so this host cannot sign a kubelet client certificate; sign one with the CA that holds the key (kubeadm's troubleshooting guide, \"Kubelet client certificate rotation fails\")", caKey))
	case len(p.ca) == 0:
		problems = append(problems, fmt.Sprintf("CA certificate %s not found", caCrt))
	}
	if !p.openssl {
		problems = append(problems, "openssl is not installed on the host (it makes the key and signs the certificate there)")
	}
	if !p.pkiDir {
		problems = append(problems, fmt.Sprintf("%s does not exist", s.KubeletPKI))
	}
	return problems
}

// Plan says, read-only, whether the certificate would be renewed, for whom,
// and exactly what would change.
func (s *RenewKubeletClient) Plan(ctx context.Context, t *Target) (Plan, error) {
	kp, err := s.inspect(ctx, t)
	if err != nil {
		return Plan{}, err
	}
	if kp.skip != "" {
		return Plan{Summary: "would skip: " + kp.skip, Data: kp.info}, nil
	}
	cur := s.currentPath()
	p := Plan{
		Summary: fmt.Sprintf("would issue a new kubelet client certificate for system:node:%s (ECDSA P-256 key made on the host, signed there by %s, valid %dd), "+
			"point %s and %s at it, and run: %s", kp.node, path.Join(s.KubeDir, "pki", "ca.key"), kp.days, cur, s.KubeletConf, s.Restart),
		WouldChange: true,
		Data:        kp.info,
	}
	p.Details = append(p.Details,
		fmt.Sprintf("current %s: %s", cur, kp.oldState(t.Now())),
		fmt.Sprintf("node name %s (from %s); subject %s", kp.node, kp.nodeFrom, kp.info.Subject),
		fmt.Sprintf("new file %s/kubelet-client-<UTC date>.pem (0600, certificate and key); %s re-pointed at it (now: %s)",
			s.KubeletPKI, cur, kp.previous()),
		fmt.Sprintf("kubelet.conf %s: %s", s.KubeletConf, kp.confNote),
		fmt.Sprintf("backup of kubelet.conf and the previous link in %s-kubelet-client-<id>/ with a restore.sh", path.Join(DefaultBackupDir, t.RunID)),
	)
	if kp.clamped != "" {
		p.Details = append(p.Details, kp.clamped)
	}
	return p, nil
}

// kubeletClientOrNone returns s, or "none".
func kubeletClientOrNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// previous says what kubelet-client-current.pem was before: a link's target,
// a regular file, or nothing.
func (kp *kubeletClientPlan) previous() string {
	switch {
	case kp.probe.isLink:
		return kp.probe.link
	case kp.probe.current != nil:
		return "a regular file, kept in the backup"
	}
	return "none"
}

// Apply issues the new certificate and switches the kubelet to it: see the
// package comment of the step above and scripts/renew_kubelet_client.sh.
func (s *RenewKubeletClient) Apply(ctx context.Context, t *Target) (Result, error) {
	kp, err := s.inspect(ctx, t)
	if err != nil {
		return Result{}, err
	}
	if kp.skip != "" {
		return Result{Data: kp.info}, Skip("%s", kp.skip)
	}
	root, err := backupDir(DefaultBackupDir, t.RunID)
	if err != nil {
		return Result{}, err
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	b := root + "-kubelet-client-" + hex.EncodeToString(rnd[:])
	m := newMarker()
	writeConf := "0"
	if kp.conf != nil {
		writeConf = "1"
	}
	cmd := kubeletClientCmd(kubeletClientRestoreLib+kubeletClientIssueScript,
		s.KubeDir, s.KubeletPKI, s.KubeletConf, kp.node, strconv.Itoa(kp.days), b, kp.probe.confSum, writeConf, m, s.restoreScript(t.RunID))
	var out []byte
	if kp.conf != nil {
		out, err = t.RunInput(ctx, cmd, kp.conf)
	} else {
		out, err = t.Run(ctx, cmd)
	}
	if err != nil {
		return Result{}, s.issueFailed(t, b, err)
	}
	is, err := parseKubeletClientIssued(out, m)
	if err != nil {
		return Result{}, s.restoreAfter(t, b, "", fmt.Errorf("renew_kubelet_client: %w", err))
	}
	if err := s.verify(ctx, t, kp, is); err != nil {
		return Result{}, s.restoreAfter(t, b, is.file, fmt.Errorf("the new kubelet client certificate failed verification: %w", err))
	}
	if _, err := t.Run(ctx, s.Restart); err != nil {
		return Result{}, s.restoreAfter(t, b, is.file, fmt.Errorf("restarting the kubelet (%s): %w", s.Restart, err))
	}
	na := is.cert.NotAfter.UTC()
	info := kp.info
	info.Subject, info.NewNotAfter, info.File, info.Backup = is.cert.Subject.String(), &na, is.file, is.backup
	info.SHA256 = fingerprint(is.cert.Raw)
	cur := s.currentPath()
	details := []string{
		fmt.Sprintf("old: %s; %s", kubeletClientOrNone(info.OldSubject), kp.oldState(t.Now())),
		fmt.Sprintf("new: %s, issued by %s, valid until %s (%dd), sha256 %s", info.Subject, is.cert.Issuer, na.Format(time.RFC3339), kp.days, info.SHA256),
		fmt.Sprintf("%s → %s (was %s)", cur, is.target, kp.previous()),
		fmt.Sprintf("kubelet.conf %s: %s", s.KubeletConf, kp.confNote),
		fmt.Sprintf("verified on the host: chains to %s, public key matches the private key (sha256 %s)", path.Join(s.KubeDir, "pki", "ca.crt"), is.keyDigest),
		fmt.Sprintf("restarted the kubelet: %s", s.Restart),
		fmt.Sprintf("backup: %s; restore with: sh %s", is.backup, shellquote.Quote(is.backup+"/restore.sh")),
	}
	if kp.clamped != "" {
		details = append(details, kp.clamped)
	}
	old := "missing"
	if info.OldNotAfter != nil {
		old = info.OldNotAfter.Format(time.RFC3339)
	}
	return Result{
		Changed: true,
		Message: fmt.Sprintf("kubelet client certificate for system:node:%s renewed: not after %s → %s; kubelet restarted", kp.node, old, na.Format(time.RFC3339)),
		Details: details,
		Data:    info,
		Undo:    s.undo(is),
	}, nil
}

// verify checks the new certificate (subject, chain to the host's CA, key
// digests, validity) and, with a second read-only probe, that
// kubelet-client-current.pem and kubelet.conf now lead to it.
func (s *RenewKubeletClient) verify(ctx context.Context, t *Target, kp *kubeletClientPlan, is *kubeletClientIssued) error {
	c := is.cert
	if c.Subject.CommonName != "system:node:"+kp.node || len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != "system:nodes" {
		return fmt.Errorf("subject is %s, want O=system:nodes, CN=system:node:%s", c.Subject, kp.node)
	}
	pool := x509.NewCertPool()
	for _, ca := range kp.probe.ca {
		pool.AddCert(ca)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: c.NotBefore.Add(time.Second)}); err != nil {
		return fmt.Errorf("does not chain to the host's CA: %w", err)
	}
	spki := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	if d := hex.EncodeToString(spki[:]); d != is.certDigest || d != is.keyDigest || d == emptySHA256 {
		return fmt.Errorf("public key digest %s, on the host: certificate %s, key %s", d, is.certDigest, is.keyDigest)
	}
	if got, want := c.NotAfter.Sub(c.NotBefore), time.Duration(kp.days)*24*time.Hour; got != want {
		return fmt.Errorf("valid for %v, want %v", got, want)
	}
	if !c.NotAfter.After(t.Now()) {
		return fmt.Errorf("expires %s, already past", c.NotAfter.UTC().Format(time.RFC3339))
	}
	after, err := s.probe(ctx, t)
	if err != nil {
		return err
	}
	if after.current == nil || !bytes.Equal(after.current.Raw, c.Raw) {
		return fmt.Errorf("%s does not hold the new certificate", s.currentPath())
	}
	if after.link != is.target {
		return fmt.Errorf("%s points at %q, want %q", s.currentPath(), after.link, is.target)
	}
	if after.confUnsafe || after.conf == nil {
		return fmt.Errorf("%s cannot be read back", s.KubeletConf)
	}
	if err := checkKubeletClientConf(after.conf, s.currentPath()); err != nil {
		return fmt.Errorf("%s: %w", s.KubeletConf, err)
	}
	return nil
}
