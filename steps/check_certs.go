package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/yamlx"
)

// checkCertsParams is the YAML form of a check_certs step.
type checkCertsParams struct {
	KubernetesDir string          `yaml:"kubernetes_dir"`
	KubeletPKI    string          `yaml:"kubelet_pki"`
	WarnWithin    *yamlx.Duration `yaml:"warn_within"`
	FailWithin    *yamlx.Duration `yaml:"fail_within"`
}

// CheckCerts reports every certificate kubeadm manages on a host (read-only).
type CheckCerts struct {
	// KubeDir is the kubernetes dir (pki/, *.conf).
	KubeDir string
	// KubeletPKI holds kubelet-client-current.pem.
	KubeletPKI string
	// WarnWithin adds a warning for each certificate expiring within it (0: none).
	WarnWithin time.Duration
	// FailWithin fails the step when a certificate expires within it (0: never).
	FailWithin time.Duration
}

// NewCheckCerts builds a check_certs step.
func NewCheckCerts(n *yaml.Node, x Expander) (Step, error) {
	var p checkCertsParams
	if err := decodeParams(n, &p, "check_certs"); err != nil {
		return nil, err
	}
	e := paramExpander{n: n, x: x, step: "check_certs"}
	s := &CheckCerts{
		WarnWithin: dur(p.WarnWithin, yamlx.Duration(30*24*time.Hour)).D(),
		FailWithin: dur(p.FailWithin, 0).D(),
	}
	var err error
	if s.KubeDir, err = e.abs("kubernetes_dir", p.KubernetesDir, DefaultKubernetesDir); err != nil {
		return nil, err
	}
	if s.KubeletPKI, err = e.abs("kubelet_pki", p.KubeletPKI, DefaultKubeletPKI); err != nil {
		return nil, err
	}
	return s, nil
}

// Plan runs the same read-only check as Apply.
func (s *CheckCerts) Plan(ctx context.Context, t *Target) (Plan, error) {
	r, err := s.check(ctx, t)
	return Plan{Summary: r.Message, Details: r.Details, Data: r.Data}, err
}

// Apply reads and reports the certificates; it never changes the host.
func (s *CheckCerts) Apply(ctx context.Context, t *Target) (Result, error) {
	return s.check(ctx, t)
}

func (s *CheckCerts) check(ctx context.Context, t *Target) (Result, error) {
	now := t.Now()
	hc, err := readCerts(ctx, t, probeOpts{kubeDir: s.KubeDir, kubeletPKI: s.KubeletPKI}, now)
	if err != nil {
		return Result{}, err
	}
	l := hc.list()
	present := 0
	for _, c := range l {
		if !c.Missing && c.Kind != KindKubelet {
			present++
		}
	}
	if present == 0 {
		return Result{Data: l}, fmt.Errorf("no kubeadm certificates under %s (is this a control-plane node?)", s.KubeDir)
	}
	r := Result{Data: l, Message: certSummary(l, now, s.WarnWithin)}
	r.Details = certTableLines(l)
	r.Details = append(r.Details, certWarnings(l, now, s.WarnWithin)...)
	if s.FailWithin > 0 {
		if bad := l.Expiring(now, s.FailWithin); len(bad) > 0 {
			return r, fmt.Errorf("%d certificate(s) expire within %s: %s", len(bad), yamlx.Duration(s.FailWithin), certNamesWithExpiry(bad))
		}
	}
	return r, nil
}

// certSummary is the one-line report of a host's certificates.
func certSummary(l CertList, now time.Time, within time.Duration) string {
	present := CertList{}
	for _, c := range l {
		if !c.Missing {
			present = append(present, c)
		}
	}
	msg := fmt.Sprintf("%d certificates (%d renewable by kubeadm)", len(present), len(l.Renewable()))
	if len(present) > 0 {
		present.SortByExpiry()
		c := present[0]
		msg += fmt.Sprintf("; soonest: %s on %s (%d days)", c.Name, c.NotAfter.UTC().Format(time.RFC3339), c.DaysLeft)
	}
	if within > 0 {
		msg += fmt.Sprintf("; %d expire within %s", len(l.Expiring(now, within)), yamlx.Duration(within))
	}
	return msg
}

// certWarnings lists certificates expiring within d, and a missing kubelet
// certificate: one line for those kubeadm renews (the table above the
// warnings gives each one's date), one for those already expired, and a
// line each for a CA or kubelet's certificate, which kubeadm certs renew
// does not renew.
func certWarnings(l CertList, now time.Time, d time.Duration) []string {
	var w []string
	if d > 0 {
		var expired []string
		var expiring CertList // soonest first, as Expiring returns them
		for _, c := range l.Expiring(now, d) {
			switch {
			case c.Kind == KindKubelet || c.Kind == KindCA:
				verb := "expires"
				if !c.NotAfter.After(now) {
					verb = "EXPIRED"
				}
				line := fmt.Sprintf("WARNING: %s (%s) %s %s, in %d days", c.Name, c.Path, verb, c.NotAfter.UTC().Format(time.RFC3339), c.DaysLeft)
				if c.Kind == KindKubelet {
					line += "; kubelet rotates this one, kubeadm certs renew does not"
				} else {
					line += "; a CA is not renewed by kubeadm certs renew"
				}
				w = append(w, line)
			case !c.NotAfter.After(now):
				expired = append(expired, c.Name)
			default:
				expiring = append(expiring, c)
			}
		}
		if len(expired) > 0 {
			w = append(w, fmt.Sprintf("WARNING: %d EXPIRED: %s", len(expired), strings.Join(expired, ", ")))
		}
		if len(expiring) > 0 {
			var names []string
			for _, c := range expiring {
				names = append(names, c.Name)
			}
			first := expiring[0]
			w = append(w, fmt.Sprintf("WARNING: %d expire within %s (soonest %s, in %d days): %s", len(expiring), yamlx.Duration(d),
				first.NotAfter.UTC().Format(time.RFC3339), first.DaysLeft, strings.Join(names, ", ")))
		}
	}
	for _, c := range l {
		if c.Missing && c.Kind == KindKubelet {
			w = append(w, fmt.Sprintf("note: kubelet client certificate %s not found", c.Path))
		}
	}
	return w
}

// certNamesWithExpiry formats "name (not_after), …".
func certNamesWithExpiry(l CertList) string {
	parts := make([]string, 0, len(l))
	for _, c := range l {
		parts = append(parts, fmt.Sprintf("%s (%s)", c.Name, c.NotAfter.UTC().Format(time.RFC3339)))
	}
	return strings.Join(parts, ", ")
}
