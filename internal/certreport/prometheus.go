package certreport

import (
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// The metric families of WritePrometheus. The x509_cert_* names, meanings
// and help texts are those of enix's x509-certificate-exporter, so its
// alerts and Grafana dashboards work unchanged.
const (
	helpNotAfter  = "Indicates the certificate's not after timestamp"
	helpNotBefore = "Indicates the certificate's not before timestamp"
	helpExpired   = "Indicates if the certificate is expired"
	helpHostUp    = "Whether kplay could check the host's certificates (1) or not (0)"
	helpUnchecked = "Number of hosts whose certificates kplay could not check"
	helpCheckedAt = "When kplay checked the certificates, in seconds since the epoch"
)

// WritePrometheus writes the report in the Prometheus text exposition
// format (for node_exporter's textfile collector, or a scrape). Each
// present certificate gets x509_cert_not_after, x509_cert_not_before and
// x509_cert_expired with the exporter's labels (filepath, filename,
// subject_CN, issuer_CN, embedded_kind for kubeconfigs) plus host, kind and
// certificate (kubeadm's name); each host gets kplay_check_host_up.
func WritePrometheus(w io.Writer, r *Report) error {
	var b strings.Builder
	var certs []Cert
	for _, h := range r.Hosts {
		for _, c := range h.Certificates {
			if c.State != StateMissing {
				certs = append(certs, c)
			}
		}
	}
	sort.SliceStable(certs, func(i, j int) bool {
		if certs[i].Host != certs[j].Host {
			return certs[i].Host < certs[j].Host
		}
		return certs[i].Path < certs[j].Path
	})
	family(&b, "x509_cert_not_after", helpNotAfter, certs, func(c Cert) int64 { return c.NotAfter.Unix() })
	family(&b, "x509_cert_not_before", helpNotBefore, certs, func(c Cert) int64 {
		if c.NotBefore == nil {
			return 0
		}
		return c.NotBefore.Unix()
	})
	family(&b, "x509_cert_expired", helpExpired, certs, func(c Cert) int64 { return boolValue(c.Expired) })
	header(&b, "kplay_check_host_up", helpHostUp)
	for _, h := range r.Hosts {
		fmt.Fprintf(&b, "kplay_check_host_up{host=%s} %d\n", quote(h.Name), boolValue(r.Checked(h.Name)))
	}
	header(&b, "kplay_check_unchecked_hosts", helpUnchecked)
	fmt.Fprintf(&b, "kplay_check_unchecked_hosts %d\n", len(r.Unchecked))
	header(&b, "kplay_check_timestamp_seconds", helpCheckedAt)
	fmt.Fprintf(&b, "kplay_check_timestamp_seconds %d\n", r.CheckedAt.Unix())
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing the Prometheus report: %w", err)
	}
	return nil
}

// family writes one gauge family: its HELP and TYPE, then one sample per certificate.
func family(b *strings.Builder, name, help string, certs []Cert, value func(Cert) int64) {
	header(b, name, help)
	for _, c := range certs {
		fmt.Fprintf(b, "%s{%s} %d\n", name, certLabels(c), value(c))
	}
}

// header writes a gauge family's HELP and TYPE lines.
func header(b *strings.Builder, name, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
}

// certLabels are a certificate's labels, sorted by name.
func certLabels(c Cert) string {
	labels := [][2]string{
		{"certificate", c.Name},
		{"filename", path.Base(c.Path)},
		{"filepath", c.Path},
		{"host", c.Host},
		{"issuer_CN", commonName(c.Issuer)},
		{"kind", c.Kind},
		{"subject_CN", commonName(c.Subject)},
	}
	if c.Kind == "kubeconfig" {
		labels = append(labels, [2]string{"embedded_kind", "user"})
	}
	sort.Slice(labels, func(i, j int) bool { return labels[i][0] < labels[j][0] })
	parts := make([]string, 0, len(labels))
	for _, l := range labels {
		parts = append(parts, l[0]+"="+quote(l[1]))
	}
	return strings.Join(parts, ",")
}

// quote is a label value in the exposition format: backslash, double quote
// and newline escaped.
func quote(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) + `"`
}

// boolValue is 1 for true and 0 for false.
func boolValue(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// commonName returns the CN of a distinguished name as crypto/x509/pkix
// formats it (RFC 2253: "CN=kube-apiserver,O=…", with "\," for a comma in
// a value), unescaped; "" when it has none.
func commonName(dn string) string {
	var attr strings.Builder
	flush := func() (string, bool) {
		k, v, ok := strings.Cut(attr.String(), "=")
		attr.Reset()
		return v, ok && strings.EqualFold(k, "CN")
	}
	for i := 0; i < len(dn); i++ {
		switch c := dn[i]; {
		case c == '\\' && i+1 < len(dn):
			i++
			attr.WriteByte(dn[i])
		case c == ',' || c == '+':
			if v, ok := flush(); ok {
				return v
			}
		default:
			attr.WriteByte(c)
		}
	}
	if v, ok := flush(); ok {
		return v
	}
	return ""
}
