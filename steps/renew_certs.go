package steps

import (
	"context"
	_ "embed" // scripts/renew.sh
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/hostexec"
	"github.com/kplay/kplay/internal/shellquote"
	"github.com/kplay/kplay/internal/yamlx"
)

// renewCertsParams is the YAML form of a renew_certs step.
type renewCertsParams struct {
	Certs         []string        `yaml:"certs"`
	Config        string          `yaml:"config"`
	OnlyWithin    *yamlx.Duration `yaml:"only_within"`
	BackupKeep    *int            `yaml:"backup_keep"`
	Validity      *yamlx.Duration `yaml:"validity"`
	Kubeadm       string          `yaml:"kubeadm"`
	KubernetesDir string          `yaml:"kubernetes_dir"`
	BackupDir     string          `yaml:"backup_dir"`
}

// keepMargin: renew_certs' undo does not put back certificates that expire
// within it (or already have).
const keepMargin = 24 * time.Hour

// defaultValidity is kubeadm's default certificateValidityPeriod.
const defaultValidity = 365 * 24 * time.Hour

// RenewCerts runs `kubeadm certs renew` after making sure a verified backup exists.
type RenewCerts struct {
	// Certs are kubeadm certificate names; nil means `kubeadm certs renew all`.
	Certs []string
	// Config is an optional kubeadm config file on the host (--config).
	Config string
	// OnlyWithin, when set, skips the step unless a target expires within it.
	OnlyWithin time.Duration
	// BackupKeep is the keep: of the backup renew_certs takes itself when no
	// backup step ran.
	BackupKeep int
	// Validity is how long renewed certificates will be valid; 0 means the
	// config's certificateValidityPeriod, or kubeadm's default of 365 days.
	Validity time.Duration
	// Kubeadm is the kubeadm binary on the host.
	Kubeadm string
	// KubeDir is the kubernetes dir.
	KubeDir string
	// BackupRoot is where a backup is taken if no backup step ran.
	BackupRoot string
}

// NewRenewCerts builds a renew_certs step.
func NewRenewCerts(n *yaml.Node, x Expander) (Step, error) {
	var p renewCertsParams
	if err := decodeParams(n, &p, "renew_certs"); err != nil {
		return nil, err
	}
	e := paramExpander{n: n, x: x, step: "renew_certs"}
	s := &RenewCerts{OnlyWithin: dur(p.OnlyWithin, 0).D(), Validity: dur(p.Validity, 0).D()}
	var err error
	if s.KubeDir, err = e.abs("kubernetes_dir", p.KubernetesDir, DefaultKubernetesDir); err != nil {
		return nil, err
	}
	if s.BackupRoot, err = e.abs("backup_dir", p.BackupDir, DefaultBackupDir); err != nil {
		return nil, err
	}
	if s.BackupKeep, err = backupKeep(e, "backup_keep", p.BackupKeep); err != nil {
		return nil, err
	}
	if s.Kubeadm, err = e.text("kubeadm", p.Kubeadm, "kubeadm"); err != nil {
		return nil, err
	}
	if p.Config != "" {
		if s.Config, err = e.abs("config", p.Config, ""); err != nil {
			return nil, err
		}
	}
	certs, err := e.list("certs", p.Certs)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, c := range certs {
		switch {
		case c == "all" && len(certs) == 1:
		case c == "all":
			return nil, e.errorf("certs", "\"all\" cannot be combined with other names")
		case !isRenewableName(c):
			return nil, e.errorf("certs", "unknown certificate %q (known: all, %s)", c, strings.Join(renewableNames(), ", "))
		case seen[c]:
			return nil, e.errorf("certs", "%q is listed twice", c)
		}
		seen[c] = true
	}
	if len(certs) > 0 && certs[0] != "all" {
		s.Certs = certs
	}
	if s.KubeDir != DefaultKubernetesDir {
		// kubeadm writes kubeconfigs under /etc/kubernetes whatever --cert-dir says.
		if s.Config != "" {
			return nil, e.errorf("kubernetes_dir", "cannot be combined with config: set certificatesDir in the kubeadm config instead")
		}
		for _, c := range s.targetNames() {
			if strings.HasSuffix(c, ".conf") {
				return nil, e.errorf("kubernetes_dir", "kubeadm renews %s only under %s; list pki certificates in certs: to renew under %s", c, DefaultKubernetesDir, s.KubeDir)
			}
		}
	}
	return s, nil
}

// targetNames are the certificate names this step asks kubeadm to renew.
func (s *RenewCerts) targetNames() []string {
	if s.Certs != nil {
		return s.Certs
	}
	return renewableNames()
}

// renewPlan is what renew_certs found on a host before changing anything.
type renewPlan struct {
	hc      *hostCerts
	targets CertList // present certificates that would be renewed
	skip    string   // non-empty: nothing to do, and why
}

// inspect reads the host's certificates and decides, read-only, what to renew;
// it returns an error for the cases renew_certs refuses.
func (s *RenewCerts) inspect(ctx context.Context, t *Target) (*renewPlan, error) {
	now := t.Now()
	hc, err := readCerts(ctx, t, probeOpts{kubeDir: s.KubeDir, kubeletPKI: DefaultKubeletPKI, config: s.Config}, now)
	if err != nil {
		return nil, err
	}
	rp := &renewPlan{hc: hc}
	for _, name := range s.targetNames() {
		c, ok := hc.find(name)
		if !ok {
			if s.Certs != nil {
				return nil, fmt.Errorf("certificate %s not found under %s", name, s.KubeDir)
			}
			continue // kubeadm reports it MISSING and goes on
		}
		rp.targets = append(rp.targets, c.info)
	}
	rp.targets.SortByExpiry()
	if len(rp.targets) == 0 {
		return nil, fmt.Errorf("no kubeadm certificates to renew under %s", s.KubeDir)
	}
	if s.OnlyWithin > 0 && !rp.targets.ExpiresWithin(now, s.OnlyWithin) {
		c := rp.targets[0]
		rp.skip = fmt.Sprintf("nothing expires within %s (only_within); soonest: %s on %s (%d days)",
			yamlx.Duration(s.OnlyWithin), c.Name, c.NotAfter.UTC().Format(time.RFC3339), c.DaysLeft)
		return rp, nil
	}
	validity := s.Validity
	if validity == 0 && hc.probe.validity != "" {
		if validity, err = time.ParseDuration(hc.probe.validity); err != nil {
			return nil, fmt.Errorf("kubeadm config %s: certificateValidityPeriod %q: %w", s.Config, hc.probe.validity, err)
		}
	}
	if validity == 0 {
		validity = defaultValidity
	}
	newNotAfter := hc.probe.hostNow.Add(validity)
	var problems []string
	checked := map[string]bool{}
	for _, c := range rp.targets {
		if checked[c.CA] {
			continue
		}
		checked[c.CA] = true
		keyPath := path.Join(s.KubeDir, caKeyRel(c.CA))
		if !hc.probe.caKeys[keyPath] {
			problems = append(problems, fmt.Sprintf("external CA: %s is absent, so kubeadm cannot renew the certificates signed by %s (%s); renew them with the CA that holds the key",
				keyPath, c.CA, strings.Join(namesSignedBy(rp.targets, c.CA), ", ")))
			continue
		}
		ca, ok := hc.find(c.CA)
		if !ok {
			problems = append(problems, fmt.Sprintf("CA certificate %s not found", path.Join(s.KubeDir, specPath(c.CA))))
			continue
		}
		if ca.info.NotAfter.Before(newNotAfter) {
			problems = append(problems, fmt.Sprintf("CA %s expires %s, before the renewed certificates would (%s, validity %s): renew the CA first",
				c.CA, ca.info.NotAfter.Format(time.RFC3339), newNotAfter.UTC().Format(time.RFC3339), yamlx.Duration(validity)))
		}
	}
	if len(problems) > 0 {
		return rp, fmt.Errorf("refusing to renew on this host: %s", strings.Join(problems, "; "))
	}
	return rp, nil
}

// namesSignedBy lists the names of certificates signed by CA ca.
func namesSignedBy(l CertList, ca string) []string {
	var n []string
	for _, c := range l {
		if c.CA == ca {
			n = append(n, c.Name)
		}
	}
	return n
}

// specPath is the relative path of a known certificate.
func specPath(name string) string {
	s, _ := specByName(name)
	return s.rel
}

// kubeadmCommands are the kubeadm invocations, each one shell word list.
func (s *RenewCerts) kubeadmCommands() []string {
	var extra []string
	if s.Config != "" {
		extra = append(extra, "--config", s.Config)
	}
	if s.KubeDir != DefaultKubernetesDir {
		extra = append(extra, "--cert-dir", path.Join(s.KubeDir, "pki"))
	}
	names := []string{"all"}
	if s.Certs != nil {
		names = s.Certs
	}
	var cmds []string
	for _, n := range names {
		cmds = append(cmds, shellquote.QuoteAll(append([]string{s.Kubeadm, "certs", "renew", n}, extra...)...))
	}
	return cmds
}

// renewSh renews once the backup is verified (scripts/renew.sh).
//
//go:embed scripts/renew.sh
var renewSh string

// Exit statuses of the renew script that mean nothing was changed.
const (
	exitNoKubeadm = 96
	exitNoBackup  = 97
)

// renewScript checks kubeadm and the backup, then renews
// (scripts/renew.sh).
func (s *RenewCerts) renewScript(backup string) string {
	certDir := ""
	if s.KubeDir != DefaultKubernetesDir {
		certDir = path.Join(s.KubeDir, "pki")
	}
	names := []string{"all"}
	if s.Certs != nil {
		names = s.Certs
	}
	return shellquote.Script(treeLibSh+renewSh, append([]string{backup, s.KubeDir, s.Kubeadm, s.Config, certDir}, names...)...)
}

// Plan says which certificates would be renewed, with their current expiry.
func (s *RenewCerts) Plan(ctx context.Context, t *Target) (Plan, error) {
	rp, err := s.inspect(ctx, t)
	if err != nil {
		return Plan{}, err
	}
	if rp.skip != "" {
		return Plan{Summary: "would skip: " + rp.skip, Data: rp.targets}, nil
	}
	p := Plan{
		Summary:     fmt.Sprintf("would renew %d certificates: %s", len(rp.targets), strings.Join(s.kubeadmCommands(), " && ")),
		WouldChange: true,
		Data:        rp.targets,
	}
	if b, ok := backupFact(t, factBackup, s.KubeDir); ok {
		p.Details = append(p.Details, "backup: "+b.Dir+" (from this run's backup step)")
	} else if b, ok := backupFact(t, factBackupPlanned, s.KubeDir); ok {
		p.Details = append(p.Details, "backup: "+b.Dir+" (from the backup step)")
	} else {
		b, _, _, err := planBackup(ctx, t, s.KubeDir, s.BackupRoot)
		if err != nil {
			return p, fmt.Errorf("no backup step ran and renew_certs cannot take one: %w", err)
		}
		p.Details = append(p.Details, "backup: would take one first in "+b.Dir)
	}
	for _, c := range rp.targets {
		p.Details = append(p.Details, fmt.Sprintf("would renew %s: expires %s (%d days)", c.Name, c.NotAfter.UTC().Format(time.RFC3339), c.DaysLeft))
	}
	return p, nil
}

// Apply renews. It never starts without a complete, verified backup, and if
// kubeadm fails part way it restores the backup before returning the error.
func (s *RenewCerts) Apply(ctx context.Context, t *Target) (Result, error) {
	rp, err := s.inspect(ctx, t)
	if err != nil {
		return Result{}, err
	}
	if rp.skip != "" {
		t.Facts.Set(factRenewed, []string{})
		return Result{Data: rp.targets}, Skip("%s", rp.skip)
	}
	b, ok := backupFact(t, factBackup, s.KubeDir)
	took := ""
	if !ok {
		if b, err = takeBackup(ctx, t, s.KubeDir, s.BackupRoot, s.BackupKeep); err != nil {
			return Result{}, fmt.Errorf("no backup step ran, and taking a backup failed, so nothing was renewed: %w", err)
		}
		took = " (taken by renew_certs)"
	}
	undo := restoreUndo(s.KubeDir, b, rp.targets)
	out, err := t.Run(ctx, s.renewScript(b.Dir))
	if err != nil {
		if st, ok := hostexec.ExitStatus(err); ok && (st == exitNoKubeadm || st == exitNoBackup) {
			return Result{}, fmt.Errorf("nothing was renewed: %w", err)
		}
		return Result{}, s.restoreAfter(t, b, fmt.Errorf("%s: %w", strings.Join(s.kubeadmCommands(), " && "), err))
	}
	after, err := readCerts(ctx, t, probeOpts{kubeDir: s.KubeDir, kubeletPKI: DefaultKubeletPKI}, t.Now())
	if err != nil {
		return Result{}, s.restoreAfter(t, b, fmt.Errorf("reading the certificates after renewal: %w", err))
	}
	var notRenewed []string
	var details []string
	var renewed []string
	data := CertList{}
	for _, old := range rp.targets {
		c, ok := after.find(old.Name)
		if !ok || c.info.SHA256 == old.SHA256 {
			notRenewed = append(notRenewed, old.Name)
			continue
		}
		renewed = append(renewed, old.Name)
		data = append(data, c.info)
		details = append(details, fmt.Sprintf("renewed %s: %s → %s", old.Name,
			old.NotAfter.UTC().Format(time.RFC3339), c.info.NotAfter.UTC().Format(time.RFC3339)))
	}
	if len(notRenewed) > 0 {
		return Result{}, s.restoreAfter(t, b, fmt.Errorf("kubeadm exited 0 but did not renew %s (last output: %q)",
			strings.Join(notRenewed, ", "), lastLine(out)))
	}
	t.Facts.Set(factRenewed, renewed)
	// The message names the backup and how to restore it.
	details = append(details, "backup: "+b.Dir+took)
	return Result{
		Changed: true,
		Message: fmt.Sprintf("renewed %d certificates; run %s, backup %s; restore with: %s", len(renewed), t.RunID, b.Dir, b.Restore),
		Details: details,
		Data:    data,
		Undo:    undo,
	}, nil
}

// restoreAfter restores the backup after a failed renewal, with a fresh
// context (the run's may be cancelled), and says so in the returned error.
func (s *RenewCerts) restoreAfter(t *Target, b BackupInfo, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := runRestore(ctx, t, s.KubeDir, b.Dir); err != nil {
		return fmt.Errorf("%w; restoring %s from backup %s ALSO FAILED (%v): restore by hand on the host: %s", cause, s.KubeDir, b.Dir, err, b.Restore)
	}
	return &RestoredError{Err: cause, How: fmt.Sprintf("%s was restored from backup %s and verified", s.KubeDir, b.Dir)}
}

// restoreUndo restores kubeDir from backup b and then, if restart_apiserver
// restarted components in this run, restarts them again so that they serve
// the restored certificates.
//
// It declines (KeptError) when the certificates it would restore have
// expired, or expire within keepMargin: on an expired cluster, putting
// them back would cut this host's etcd member and apiserver off from
// their peers again, leaving the cluster smaller than the renewal made it.
func restoreUndo(kubeDir string, b BackupInfo, old CertList) *Undo {
	soonest := append(CertList(nil), old...)
	soonest.SortByExpiry()
	return &Undo{
		Repeatable: true,
		Desc:       fmt.Sprintf("restore %s from backup %s (and restart the static pods again if restart_apiserver restarted them)", kubeDir, b.Dir),
		Restore: fmt.Sprintf("on the host run: %s (restores pki, *.conf and manifests byte for byte), then restart the control-plane static pods "+
			"(move each manifest out of %s/manifests, wait until it stops, move it back)", b.Restore, kubeDir),
		Fn: func(ctx context.Context, t *Target) error {
			if len(soonest) > 0 && soonest[0].NotAfter.Before(t.Now().Add(keepMargin)) {
				c := soonest[0]
				when := "expires " + c.NotAfter.UTC().Format(time.RFC3339)
				if c.NotAfter.Before(t.Now()) {
					when = "expired " + c.NotAfter.UTC().Format(time.RFC3339)
				}
				return Keep("the renewed certificates stay: the backed-up ones are no good (%s %s); restoring them would cut this host off from its peers. The backup is kept in %s",
					c.Name, when, b.Dir)
			}
			if _, err := runRestore(ctx, t, kubeDir, b.Dir); err != nil {
				return err
			}
			if _, err := t.Restarts.Again(ctx, t); err != nil {
				return fmt.Errorf("%s was restored from %s, but restarting the static pods onto the restored certificates failed: %w", kubeDir, b.Dir, err)
			}
			return nil
		},
	}
}

// renewedFact returns the names renew_certs renewed in this run, if it ran.
func renewedFact(t *Target) ([]string, bool) {
	v, ok := t.Facts.Get(factRenewed)
	if !ok {
		return nil, false
	}
	l, ok := v.([]string)
	return slices.Clone(l), ok
}
