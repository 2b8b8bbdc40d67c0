package steps

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	_ "embed" // the step's shell scripts
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/hostexec"
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

// kubeletClientMapGet returns the value node of key in mapping m, and its index in m.Content.
func kubeletClientMapGet(m *yaml.Node, key string) (*yaml.Node, int) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, -1
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1], i
		}
	}
	return nil, -1
}

// kubeletClientConfUser finds the user mapping the kubelet uses in a parsed
// kubeconfig: the current context's user, else the first user.
func kubeletClientConfUser(doc *yaml.Node) (*yaml.Node, string, error) {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, "", errors.New("not a kubeconfig (no mapping at the top)")
	}
	users, _ := kubeletClientMapGet(root, "users")
	if users == nil || users.Kind != yaml.SequenceNode || len(users.Content) == 0 {
		return nil, "", errors.New("no users")
	}
	want := ""
	if cc, _ := kubeletClientMapGet(root, "current-context"); cc != nil {
		contexts, _ := kubeletClientMapGet(root, "contexts")
		if contexts != nil && contexts.Kind == yaml.SequenceNode {
			for _, c := range contexts.Content {
				if name, _ := kubeletClientMapGet(c, "name"); name != nil && name.Value == cc.Value {
					ctx, _ := kubeletClientMapGet(c, "context")
					if u, _ := kubeletClientMapGet(ctx, "user"); u != nil {
						want = u.Value
					}
				}
			}
		}
	}
	item := users.Content[0]
	for _, u := range users.Content {
		if name, _ := kubeletClientMapGet(u, "name"); want != "" && name != nil && name.Value == want {
			item = u
			break
		}
	}
	if item.Kind != yaml.MappingNode {
		return nil, "", errors.New("the user entry is not a mapping")
	}
	name := ""
	if n, _ := kubeletClientMapGet(item, "name"); n != nil {
		name = n.Value
	}
	user, _ := kubeletClientMapGet(item, "user")
	if user == nil {
		user = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		item.Content = append(item.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "user"}, user)
	}
	if user.Kind != yaml.MappingNode {
		return nil, "", fmt.Errorf("user %q: user is not a mapping", name)
	}
	return user, name, nil
}

// kubeletClientCredKeys are the kubeconfig user keys that name a client credential.
func kubeletClientCredKeys() []string {
	return []string{"client-certificate", "client-key", "client-certificate-data", "client-key-data"}
}

// kubeletClientConf returns kubelet.conf (given redacted) with its user's
// credential pointing at file (client-certificate and client-key), or nil
// if it already does, and a note saying what changes. The result holds no
// secret: the user's embedded data are dropped, and a secret of any other
// entry (which kplay did not read) makes it an error.
func kubeletClientConf(redacted []byte, file string) ([]byte, string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(redacted, &doc); err != nil {
		return nil, "", fmt.Errorf("parsing: %w", err)
	}
	user, name, err := kubeletClientConfUser(&doc)
	if err != nil {
		return nil, "", err
	}
	cert, _ := kubeletClientMapGet(user, "client-certificate")
	key, _ := kubeletClientMapGet(user, "client-key")
	certData, _ := kubeletClientMapGet(user, "client-certificate-data")
	keyData := false // client-key-data, token or password, redacted by the probe
	for i := 0; i+1 < len(user.Content); i += 2 {
		keyData = keyData || strings.HasPrefix(user.Content[i].Value, kubeletClientRedacted)
	}
	if cert != nil && key != nil && cert.Value == file && key.Value == file && certData == nil && !keyData {
		return nil, fmt.Sprintf("user %q already uses %s (client-certificate and client-key); left as it is", name, file), nil
	}
	var was []string
	switch {
	case certData != nil || keyData:
		was = append(was, "the embedded client-certificate-data/client-key-data")
	case cert != nil || key != nil:
		c, k := "", ""
		if cert != nil {
			c = cert.Value
		}
		if key != nil {
			k = key.Value
		}
		was = append(was, fmt.Sprintf("client-certificate %q and client-key %q", c, k))
	default:
		was = append(was, "no client certificate")
	}
	var kept []*yaml.Node
	at := -1
	for i := 0; i+1 < len(user.Content); i += 2 {
		k := user.Content[i].Value
		drop := strings.HasPrefix(k, kubeletClientRedacted)
		for _, ck := range kubeletClientCredKeys() {
			drop = drop || k == ck
		}
		if drop {
			if at < 0 {
				at = len(kept)
			}
			continue
		}
		kept = append(kept, user.Content[i], user.Content[i+1])
	}
	if at < 0 {
		at = 0
	}
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
	add := []*yaml.Node{str("client-certificate"), str(file), str("client-key"), str(file)}
	user.Content = append(append(append([]*yaml.Node{}, kept[:at]...), add...), kept[at:]...)
	user.Style = 0 // block, also if it was `user: {}`
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, "", fmt.Errorf("encoding: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, "", fmt.Errorf("encoding: %w", err)
	}
	if bytes.Contains(out.Bytes(), []byte(kubeletClientRedacted)) {
		return nil, "", fmt.Errorf("it holds a secret (client-key-data, token or password) outside user %q, which kplay does not read; point user %q at %s by hand", name, name, file)
	}
	return out.Bytes(), fmt.Sprintf("user %q: %s replaced by client-certificate and client-key %s", name, strings.Join(was, ", "), file), nil
}

// checkKubeletClientConf checks that the redacted kubelet.conf's user uses file.
func checkKubeletClientConf(redacted []byte, file string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(redacted, &doc); err != nil {
		return fmt.Errorf("parsing: %w", err)
	}
	user, name, err := kubeletClientConfUser(&doc)
	if err != nil {
		return err
	}
	for i := 0; i+1 < len(user.Content); i += 2 {
		if k := user.Content[i].Value; strings.HasPrefix(k, kubeletClientRedacted) {
			return fmt.Errorf("user %q still holds a secret (client-key-data, token or password)", name)
		}
	}
	for _, k := range kubeletClientCredKeys() {
		v, _ := kubeletClientMapGet(user, k)
		want := ""
		if !strings.HasSuffix(k, "-data") {
			want = file
		}
		got := ""
		if v != nil {
			got = v.Value
		}
		if got != want {
			return fmt.Errorf("user %q: %s is %q, want %q", name, k, got, want)
		}
	}
	return nil
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

// kubeletClientIssued is what the issue script reported.
type kubeletClientIssued struct {
	file, target, backup  string
	certDigest, keyDigest string
	cert                  *x509.Certificate
}

// parseKubeletClientIssued parses the issue script's output.
func parseKubeletClientIssued(out []byte, m string) (*kubeletClientIssued, error) {
	r := &kubeletClientIssued{}
	var certPEM []byte
	inCert := false
	for _, line := range strings.SplitAfter(string(out), "\n") {
		rest, ok := strings.CutPrefix(line, m+" ")
		if !ok {
			if inCert {
				certPEM = append(certPEM, line...)
			}
			continue
		}
		inCert = false
		word, arg, _ := strings.Cut(strings.TrimSuffix(rest, "\n"), " ")
		switch word {
		case "new":
			r.file = arg
		case "target":
			r.target = arg
		case "backup":
			r.backup = arg
		case "digests":
			r.certDigest, r.keyDigest, _ = strings.Cut(arg, " ")
		case "cert":
			inCert = true
		}
	}
	certs, err := kubeletClientPEMCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("the new certificate: %w", err)
	}
	if len(certs) == 0 || r.file == "" || r.backup == "" {
		return nil, fmt.Errorf("the issue script's output is incomplete (%d bytes)", len(out))
	}
	r.cert = certs[0]
	return r, nil
}

// restoreScript is restore.sh in the backup directory: it puts back
// kubelet.conf and kubelet-client-current.pem from the directory it is in.
func (s *RenewKubeletClient) restoreScript(runID string) string {
	return "#!/bin/sh\n# kplay renew_kubelet_client, run " + runID + ": put back kubelet.conf and kubelet-client-current.pem\n" +
		"# as they were before, from the directory this file is in; then restart the kubelet.\nset -eu\n" +
		kubeletClientRestoreLib +
		`b=$(cd -- "$(dirname -- "$0")" && pwd)
rkc_restore "$(cat -- "$b/kubelet_pki")" "$(cat -- "$b/kubelet_conf")" "$b" "$(cat -- "$b/new")"
echo "now restart the kubelet: "` + shellquote.Quote(s.Restart) + "\n"
}

// undoCmd restores from backup dir b, removing the new file.
func (s *RenewKubeletClient) undoCmd(b, file string) string {
	return kubeletClientCmd("set -eu\n"+kubeletClientRestoreLib+`rkc_restore "$@"`+"\n", s.KubeletPKI, s.KubeletConf, b, file)
}

// recoverCmd restores from backup dir b if the switch may have begun (the
// backup is complete): for an issue script whose outcome is unknown.
func (s *RenewKubeletClient) recoverCmd(b string) string {
	return kubeletClientCmd("set -eu\n"+kubeletClientRestoreLib+`if [ ! -f "$3/new" ]; then echo "no complete backup in $3: the switch had not begun, nothing changed"; exit 0; fi
rkc_restore "$1" "$2" "$3" "$(cat -- "$3/new")"
`, s.KubeletPKI, s.KubeletConf, b)
}

// restoreHint tells a person how to restore by hand.
func (s *RenewKubeletClient) restoreHint(b string) string {
	return fmt.Sprintf("on the host run: sh %s && %s", shellquote.Quote(b+"/restore.sh"), s.Restart)
}

// freshKubeletClientCtx returns a context for restoring after a failure: the run's may be cancelled.
func freshKubeletClientCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
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

// issueFailed explains a failed issue script, restoring the host first when
// the script may have stopped during the switch.
func (s *RenewKubeletClient) issueFailed(t *Target, b string, err error) error {
	err = fmt.Errorf("renewing the kubelet client certificate: %w", err)
	st, ok := hostexec.ExitStatus(err)
	switch {
	case ok && st == kubeletClientExitRestored:
		return &RestoredError{Err: err, How: fmt.Sprintf("kubelet.conf and kubelet-client-current.pem were put back from %s", b)}
	case ok && st == kubeletClientExitRestoreFails:
		return fmt.Errorf("%w; putting kubelet.conf and kubelet-client-current.pem back ALSO FAILED: %s", err, s.restoreHint(b))
	case ok && st > 0 && st < 128:
		return err // the script stopped before the switch: nothing was changed
	}
	// Killed, cancelled or the connection was lost: the outcome is unknown.
	rctx, cancel := freshKubeletClientCtx()
	defer cancel()
	out, rerr := t.Run(rctx, s.recoverCmd(b))
	if rerr != nil {
		return fmt.Errorf("%w; the host may be half switched, and restoring it failed (%v): %s", err, rerr, s.restoreHint(b))
	}
	return &RestoredError{Err: err, How: "checked the host: " + lastLine(out)}
}

// restoreAfter puts back kubelet.conf and the link after a failure that
// followed a complete switch, restarts the kubelet onto them, and says so in
// the returned error.
func (s *RenewKubeletClient) restoreAfter(t *Target, b, file string, cause error) error {
	rctx, cancel := freshKubeletClientCtx()
	defer cancel()
	cmd := s.recoverCmd(b)
	if file != "" {
		cmd = s.undoCmd(b, file)
	}
	if _, err := t.Run(rctx, cmd); err != nil {
		return fmt.Errorf("%w; putting kubelet.conf and kubelet-client-current.pem back from %s ALSO FAILED (%v): %s", cause, b, err, s.restoreHint(b))
	}
	if _, err := t.Run(rctx, s.Restart); err != nil {
		return fmt.Errorf("%w; kubelet.conf and kubelet-client-current.pem were put back from %s, but restarting the kubelet onto them failed (%v): run %s", cause, b, err, s.Restart)
	}
	return &RestoredError{Err: cause, How: fmt.Sprintf("kubelet.conf and kubelet-client-current.pem were put back from %s and the kubelet restarted (%s)", b, s.Restart)}
}

// undo puts back the previous link and kubelet.conf, removes the new file and restarts the kubelet.
func (s *RenewKubeletClient) undo(is *kubeletClientIssued) *Undo {
	return &Undo{
		Desc:    fmt.Sprintf("put back kubelet.conf and kubelet-client-current.pem from %s, remove %s, and restart the kubelet (%s)", is.backup, is.file, s.Restart),
		Restore: s.restoreHint(is.backup),
		Fn: func(ctx context.Context, t *Target) error {
			if _, err := t.Run(ctx, s.undoCmd(is.backup, is.file)); err != nil {
				return fmt.Errorf("putting back kubelet.conf and kubelet-client-current.pem from %s: %w", is.backup, err)
			}
			if _, err := t.Run(ctx, s.Restart); err != nil {
				return fmt.Errorf("kubelet.conf and kubelet-client-current.pem were put back from %s, but restarting the kubelet failed (%s): %w", is.backup, s.Restart, err)
			}
			return nil
		},
	}
}
