package steps

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/remote"
)

// Defaults shared by the kubeadm step types.
const (
	// DefaultKubernetesDir is where kubeadm keeps pki/, manifests/ and the kubeconfigs.
	DefaultKubernetesDir = "/etc/kubernetes"
	// DefaultKubeletPKI is where kubelet keeps its client certificate.
	DefaultKubeletPKI = "/var/lib/kubelet/pki"
	// DefaultBackupDir is the root under which each run's backup is written.
	DefaultBackupDir = "/var/lib/kplay/backups"
)

// CertKind says what kind of certificate a CertInfo describes.
type CertKind string

// The kinds of certificates check_certs reports.
const (
	// KindPKI is a leaf certificate file under pki/ (renewed by kubeadm).
	KindPKI CertKind = "pki"
	// KindKubeconfig is a client certificate embedded in a kubeconfig (renewed by kubeadm).
	KindKubeconfig CertKind = "kubeconfig"
	// KindCA is a certificate authority (not renewed by kubeadm certs renew).
	KindCA CertKind = "ca"
	// KindKubelet is kubelet's client certificate (rotated by kubelet, not by kubeadm).
	KindKubelet CertKind = "kubelet"
)

// CertInfo describes one certificate found (or missing) on a host.
type CertInfo struct {
	// Host is the inventory name of the host.
	Host string `json:"host,omitempty"`
	// Name is kubeadm's name for it (apiserver, etcd-server, admin.conf, ca, kubelet-client, …).
	Name string `json:"name"`
	// Path is the file it was read from, on the host.
	Path string `json:"path"`
	// Kind is pki, kubeconfig, ca or kubelet.
	Kind CertKind `json:"kind"`
	// Subject is the certificate's subject DN.
	Subject string `json:"subject,omitempty"`
	// Issuer is the issuer DN.
	Issuer string `json:"issuer,omitempty"`
	// CA is the name of the CA that signs it (ca, etcd-ca, front-proxy-ca), empty for CAs.
	CA string `json:"ca,omitempty"`
	// NotBefore is the start of validity.
	NotBefore time.Time `json:"not_before,omitzero"`
	// NotAfter is the expiry, RFC 3339 in JSON.
	NotAfter time.Time `json:"not_after,omitzero"`
	// DaysLeft is whole days from the check until NotAfter (negative once expired).
	DaysLeft int `json:"days_left"`
	// IsCA is the certificate's basic-constraints CA flag.
	IsCA bool `json:"is_ca"`
	// Renewable is true when `kubeadm certs renew` renews it.
	Renewable bool `json:"renewable"`
	// Missing is true when the file kubeadm would have written is absent.
	Missing bool `json:"missing,omitempty"`
	// SHA256 is the fingerprint of the DER certificate, hex.
	SHA256 string `json:"sha256,omitempty"`
}

// CertList is the Data of check_certs (and of renew_certs' plan): one host's certificates.
type CertList []CertInfo

// Expiring returns the present certificates whose NotAfter is before now+within, soonest first.
func (l CertList) Expiring(now time.Time, within time.Duration) CertList {
	var out CertList
	limit := now.Add(within)
	for _, c := range l {
		if !c.Missing && c.NotAfter.Before(limit) {
			out = append(out, c)
		}
	}
	out.SortByExpiry()
	return out
}

// ExpiresWithin reports whether any present certificate expires before now+within.
func (l CertList) ExpiresWithin(now time.Time, within time.Duration) bool {
	return len(l.Expiring(now, within)) > 0
}

// Renewable returns the present certificates that kubeadm certs renew renews.
func (l CertList) Renewable() CertList {
	var out CertList
	for _, c := range l {
		if c.Renewable && !c.Missing {
			out = append(out, c)
		}
	}
	return out
}

// Find returns the certificate with kubeadm name, if present in the list.
func (l CertList) Find(name string) (CertInfo, bool) {
	for _, c := range l {
		if c.Name == name {
			return c, true
		}
	}
	return CertInfo{}, false
}

// SortByExpiry sorts soonest expiry first; missing certificates go last; ties by host, name.
func (l CertList) SortByExpiry() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.Missing != b.Missing {
			return !a.Missing
		}
		if !a.NotAfter.Equal(b.NotAfter) {
			return a.NotAfter.Before(b.NotAfter)
		}
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		return a.Name < b.Name
	})
}

// WriteCertTable writes certs as an aligned text table sorted by expiry:
// host (when withHost), certificate, expires, days left, CA, kind.
func WriteCertTable(w io.Writer, certs CertList, withHost bool) error {
	l := append(CertList(nil), certs...)
	l.SortByExpiry()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if withHost {
		fmt.Fprint(tw, "HOST\t")
	}
	fmt.Fprintln(tw, "CERTIFICATE\tEXPIRES\tDAYS LEFT\tCA\tKIND")
	for _, c := range l {
		if withHost {
			fmt.Fprintf(tw, "%s\t", c.Host)
		}
		exp, days, ca := "missing", "-", c.CA
		if !c.Missing {
			exp = c.NotAfter.UTC().Format("2006-01-02 15:04 MST")
			days = strconv.Itoa(c.DaysLeft)
		}
		if ca == "" {
			ca = "-"
		}
		kind := string(c.Kind)
		if c.Kind == KindKubelet {
			kind += " (not renewed by kubeadm)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, exp, days, ca, kind)
	}
	return tw.Flush()
}

// certTableLines is WriteCertTable split into lines, for Result.Details.
func certTableLines(certs CertList) []string {
	var b strings.Builder
	_ = WriteCertTable(&b, certs, false)
	return strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
}

// certSpec is one certificate kubeadm manages.
type certSpec struct {
	name string   // kubeadm's name, as in `kubeadm certs renew NAME`
	rel  string   // path relative to the kubernetes dir
	kind CertKind // pki, kubeconfig or ca
	ca   string   // name of the CA that signs it; "" for CAs
}

// kubeadmCerts lists the certificates kubeadm manages, in kubeadm's order.
func kubeadmCerts() []certSpec {
	return []certSpec{
		{"admin.conf", "admin.conf", KindKubeconfig, "ca"},
		{"apiserver", "pki/apiserver.crt", KindPKI, "ca"},
		{"apiserver-etcd-client", "pki/apiserver-etcd-client.crt", KindPKI, "etcd-ca"},
		{"apiserver-kubelet-client", "pki/apiserver-kubelet-client.crt", KindPKI, "ca"},
		{"controller-manager.conf", "controller-manager.conf", KindKubeconfig, "ca"},
		{"etcd-healthcheck-client", "pki/etcd/healthcheck-client.crt", KindPKI, "etcd-ca"},
		{"etcd-peer", "pki/etcd/peer.crt", KindPKI, "etcd-ca"},
		{"etcd-server", "pki/etcd/server.crt", KindPKI, "etcd-ca"},
		{"front-proxy-client", "pki/front-proxy-client.crt", KindPKI, "front-proxy-ca"},
		{"scheduler.conf", "scheduler.conf", KindKubeconfig, "ca"},
		{"super-admin.conf", "super-admin.conf", KindKubeconfig, "ca"},
		{"ca", "pki/ca.crt", KindCA, ""},
		{"etcd-ca", "pki/etcd/ca.crt", KindCA, ""},
		{"front-proxy-ca", "pki/front-proxy-ca.crt", KindCA, ""},
	}
}

// renewableNames lists the names `kubeadm certs renew` accepts, besides "all".
func renewableNames() []string {
	var n []string
	for _, s := range kubeadmCerts() {
		if s.kind != KindCA {
			n = append(n, s.name)
		}
	}
	return n
}

// specByName finds a kubeadm certificate by name.
func specByName(name string) (certSpec, bool) {
	for _, s := range kubeadmCerts() {
		if s.name == name {
			return s, true
		}
	}
	return certSpec{}, false
}

// caKeyRel maps a CA name to its key file, relative to the kubernetes dir.
func caKeyRel(ca string) string {
	switch ca {
	case "etcd-ca":
		return "pki/etcd/ca.key"
	case "front-proxy-ca":
		return "pki/front-proxy-ca.key"
	}
	return "pki/ca.key"
}

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

// newMarker returns a random line prefix that file contents cannot collide with.
func newMarker() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "#kplay-" + hex.EncodeToString(b[:])
}

// kubeconfigFilter is an awk program that drops secrets (client-key-data,
// token, password, with any continuation lines) from a kubeconfig on the host.
const kubeconfigFilter = `{ match($0, /^[ \t]*/); ind = RLENGTH }
skip && ind > kind { next }
{ skip = 0 }
/^[ \t]*(- )?(client-key-data|token|password):/ { skip = 1; kind = ind; next }
{ print }`

// sh wraps a POSIX script as one command for the host's login shell.
func sh(script string) string { return "sh -c " + remote.Quote(script) }

// probeScript builds the one command that reads every certificate of a host:
// PEM certificate blocks only (never keys), kubeconfigs without secrets.
func probeScript(o probeOpts, m string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kd=%s; kp=%s; m=%s\n", remote.Quote(o.kubeDir), remote.Quote(o.kubeletPKI), remote.Quote(m))
	b.WriteString(`printf '%s now %s\n' "$m" "$(date +%s)"
certs() { sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$1"; }
for f in "$kd"/pki/*.crt "$kd"/pki/etcd/*.crt; do
  [ -f "$f" ] || continue
  printf '%s file pki %s\n' "$m" "$f"; certs "$f"
done
for n in admin super-admin controller-manager scheduler; do
  f="$kd/$n.conf"
  if [ -f "$f" ]; then printf '%s file kubeconfig %s\n' "$m" "$f"; awk '` + kubeconfigFilter + `' "$f"
  else printf '%s missing kubeconfig %s\n' "$m" "$f"; fi
done
f="$kp/kubelet-client-current.pem"
if [ -f "$f" ]; then printf '%s file kubelet %s\n' "$m" "$f"; certs "$f"
else printf '%s missing kubelet %s\n' "$m" "$f"; fi
for k in "$kd/pki/ca.key" "$kd/pki/front-proxy-ca.key" "$kd/pki/etcd/ca.key"; do
  if [ -f "$k" ]; then printf '%s cakey yes %s\n' "$m" "$k"; else printf '%s cakey no %s\n' "$m" "$k"; fi
done
`)
	if o.keyDigests {
		b.WriteString(`if command -v openssl >/dev/null 2>&1; then
  spki() { openssl pkey "$@" -pubout -outform DER 2>/dev/null | sha256sum | cut -d' ' -f1; }
  for f in "$kd"/pki/*.crt "$kd"/pki/etcd/*.crt; do
    [ -f "${f%.crt}.key" ] || continue
    printf '%s keydigest %s %s\n' "$m" "$(spki -in "${f%.crt}.key")" "$f"
  done
  for n in admin super-admin controller-manager scheduler; do
    f="$kd/$n.conf"
    [ -f "$f" ] || continue
    d=$(awk '/^[ \t]*client-key-data:/ { print $2; exit }' "$f" | tr -d "\"'" | base64 -d 2>/dev/null | spki)
    printf '%s keydigest %s %s\n' "$m" "$d" "$f"
  done
else
  printf '%s noopenssl\n' "$m"
fi
`)
	}
	if o.config != "" {
		fmt.Fprintf(&b, "c=%s\n", remote.Quote(o.config))
		b.WriteString(`[ -r "$c" ] || { echo "kubeadm config $c is not readable" >&2; exit 2; }
printf '%s validity %s\n' "$m" "$(sed -n 's/^[ \t]*certificateValidityPeriod:[ \t]*//p' "$c" | tr -d "\"' " | head -n 1)"
`)
	}
	return sh(b.String())
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
		pc.info.DaysLeft = daysLeft(pc.info.NotAfter, now)
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

// daysLeft is whole days from now until t, rounded down (negative once past).
func daysLeft(t, now time.Time) int {
	return int(math.Floor(t.Sub(now).Hours() / 24))
}

// certName returns kubeadm's name for the file at p, and its spec if kubeadm knows it.
func certName(kind CertKind, p, kubeDir string) (string, certSpec) {
	rel := strings.TrimPrefix(strings.TrimPrefix(p, strings.TrimSuffix(kubeDir, "/")), "/")
	for _, s := range kubeadmCerts() {
		if s.rel == rel {
			return s.name, s
		}
	}
	switch kind {
	case KindKubelet:
		return "kubelet-client", certSpec{name: "kubelet-client", kind: KindKubelet}
	case KindKubeconfig:
		n := path.Base(p)
		return n, certSpec{name: n, kind: KindKubeconfig, ca: "ca"}
	}
	n := strings.TrimSuffix(rel, ".crt")
	if e, ok := strings.CutPrefix(n, "pki/etcd/"); ok {
		n = "etcd-" + e
	} else {
		n = strings.TrimPrefix(n, "pki/")
	}
	return n, certSpec{name: n, kind: kind}
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

// isRenewableName reports whether `kubeadm certs renew NAME` exists.
func isRenewableName(name string) bool {
	s, ok := specByName(name)
	return ok && s.kind != KindCA
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

// kubeconfigDoc is the part of a kubeconfig needed to find its client certificate.
type kubeconfigDoc struct {
	CurrentContext string `yaml:"current-context"`
	Contexts       []struct {
		Name    string `yaml:"name"`
		Context struct {
			User string `yaml:"user"`
		} `yaml:"context"`
	} `yaml:"contexts"`
	Users []struct {
		Name string `yaml:"name"`
		User struct {
			ClientCertificateData string `yaml:"client-certificate-data"`
		} `yaml:"user"`
	} `yaml:"users"`
}

// kubeconfigClientCert returns the PEM client certificate of the current
// context's user (or the first user that has one).
func kubeconfigClientCert(data []byte) ([]byte, error) {
	var k kubeconfigDoc
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	want := ""
	for _, c := range k.Contexts {
		if c.Name == k.CurrentContext {
			want = c.Context.User
		}
	}
	var enc string
	for _, u := range k.Users {
		if u.User.ClientCertificateData == "" {
			continue
		}
		if u.Name == want || enc == "" {
			enc = u.User.ClientCertificateData
		}
	}
	if enc == "" {
		return nil, fmt.Errorf("no client-certificate-data")
	}
	pemData, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return nil, fmt.Errorf("client-certificate-data: %w", err)
	}
	return pemData, nil
}

// fingerprint is the hex SHA-256 of a DER certificate.
func fingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}
