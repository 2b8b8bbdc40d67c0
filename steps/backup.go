package steps

import (
	"context"
	_ "embed" // scripts/backup.sh, restore.sh
	"fmt"
	"path"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/shellquote"
)

// Fact keys shared by the kubeadm steps of one host.
const (
	// factBackup holds the BackupInfo of this run's verified backup.
	factBackup = "kubeadm.backup"
	// factBackupPlanned holds the BackupInfo a dry-run backup step would write.
	factBackupPlanned = "kubeadm.backup.planned"
	// factRenewed holds the []string of certificate names renew_certs renewed.
	factRenewed = "kubeadm.renewed"
)

// backupParams is the YAML form of a backup step.
type backupParams struct {
	KubernetesDir string `yaml:"kubernetes_dir"`
	BackupDir     string `yaml:"backup_dir"`
	Keep          *int   `yaml:"keep"`
}

// DefaultBackupKeep is how many complete backups a host keeps under the
// backup dir: each holds the CA keys, so they are not kept for ever.
const DefaultBackupKeep = 10

// backupKeep validates a keep: value (nil: the default; 0: keep all).
func backupKeep(e paramExpander, key string, v *int) (int, error) {
	if v == nil {
		return DefaultBackupKeep, nil
	}
	if *v < 0 {
		return 0, e.errorf(key, "must be 0 (keep every backup) or more, not %d", *v)
	}
	return *v, nil
}

// BackupInfo is a verified backup of a host's kubernetes dir: the Data of a
// backup step, and what renew_certs restores from.
type BackupInfo struct {
	// Host is the inventory name of the host.
	Host string `json:"host,omitempty"`
	// RunID is the run that took it.
	RunID string `json:"run_id"`
	// Dir is <backup_dir>/<run id> on the host: files/, SHA256SUMS, restore.sh, COMPLETE.
	Dir string `json:"dir"`
	// KubeDir is the directory that was backed up.
	KubeDir string `json:"kubernetes_dir"`
	// Files is the number of regular files in the backup.
	Files int `json:"files"`
	// Bytes is the size of the backed-up files.
	Bytes int64 `json:"bytes"`
	// Pruned is how many older backups were removed to keep Keep.
	Pruned int `json:"pruned,omitempty"`
	// Restore is the command a person runs on the host to restore it.
	Restore string `json:"restore"`
}

// Backup copies <kubernetes_dir>/pki, *.conf and manifests to <backup_dir>/<run id>/.
type Backup struct {
	// KubeDir is the directory backed up.
	KubeDir string
	// Root is the directory under which <run id>/ is created.
	Root string
	// Keep is how many complete backups to keep under Root (0: all).
	Keep int
}

// NewBackup builds a backup step.
func NewBackup(n *yaml.Node, x Expander) (Step, error) {
	var p backupParams
	if err := decodeParams(n, &p, "backup"); err != nil {
		return nil, err
	}
	e := paramExpander{n: n, x: x, step: "backup"}
	var s Backup
	var err error
	if s.KubeDir, err = e.abs("kubernetes_dir", p.KubernetesDir, DefaultKubernetesDir); err != nil {
		return nil, err
	}
	if s.Root, err = e.abs("backup_dir", p.BackupDir, DefaultBackupDir); err != nil {
		return nil, err
	}
	if s.Root == s.KubeDir || strings.HasPrefix(s.Root+"/", s.KubeDir+"/") {
		return nil, e.errorf("backup_dir", "must not be inside kubernetes_dir %s", s.KubeDir)
	}
	if s.Keep, err = backupKeep(e, "keep", p.Keep); err != nil {
		return nil, err
	}
	return &s, nil
}

// Plan checks the source and the free space, read-only.
func (s *Backup) Plan(ctx context.Context, t *Target) (Plan, error) {
	info, need, avail, err := planBackup(ctx, t, s.KubeDir, s.Root)
	if err != nil {
		return Plan{}, err
	}
	t.Facts.Set(factBackupPlanned, info)
	return Plan{
		Summary:     fmt.Sprintf("would copy %d files of %s (pki, *.conf, manifests) to %s, keeping modes and owners, with SHA256SUMS", info.Files, s.KubeDir, info.Dir),
		WouldChange: true,
		Details:     []string{fmt.Sprintf("space: %d KiB needed, %d KiB free", need, avail), "restore would be: " + info.Restore},
		Data:        info,
	}, nil
}

// Apply takes and verifies the backup. Backups are kept, so there is no undo.
func (s *Backup) Apply(ctx context.Context, t *Target) (Result, error) {
	info, err := takeBackup(ctx, t, s.KubeDir, s.Root, s.Keep)
	if err != nil {
		return Result{}, err
	}
	return Result{
		Changed: true,
		Message: fmt.Sprintf("run %s: backup of %s in %s (%d files, checksums verified)%s; restore with: %s", info.RunID, info.KubeDir, info.Dir, info.Files, prunedNote(info.Pruned, s.Keep), info.Restore),
		Data:    info,
	}, nil
}

// backupDir returns <root>/<run id>, refusing run ids that are not one path element.
func backupDir(root, runID string) (string, error) {
	if runID == "" || runID == "." || runID == ".." || strings.ContainsAny(runID, "/\x00\n") {
		return "", fmt.Errorf("run id %q cannot name a backup directory", runID)
	}
	return path.Join(root, runID), nil
}

// The backup's scripts (steps/scripts), run with sh and quoted arguments.
var (
	//go:embed scripts/backup.sh
	backupSh string
	//go:embed scripts/restore.sh
	restoreSh string
	//go:embed scripts/tree_lib.sh
	treeLibSh string
)

// backupScript copies, checksums and verifies; with plan=1 it only measures.
// Its stdin becomes restore.sh.
func backupScript(kubeDir, root, dir string, plan bool, keep int) string {
	mode := "0"
	if plan {
		mode = "1"
	}
	return shellquote.Script(treeLibSh+backupSh, kubeDir, root, dir, mode, strconv.Itoa(keep))
}

// restoreScript is the restore.sh of the backup in dir: the variables it
// needs, quoted, in front of scripts/restore.sh. Operators run it by hand,
// so it takes no arguments.
func restoreScript(kubeDir, dir string) string {
	return "#!/bin/sh\n# kplay: restore " + shellquote.Printable(kubeDir) + " (pki, *.conf, manifests) from the backup in " + shellquote.Printable(dir) + ".\n" +
		"kd=" + shellquote.Quote(kubeDir) + "; b=" + shellquote.Quote(dir) + "\n" + treeLibSh + restoreSh
}

// restoreHint is what a person runs on the host to restore by hand.
func restoreHint(dir string) string { return "sh " + shellquote.Quote(dir+"/restore.sh") }

// planBackup measures what a backup would copy, read-only.
func planBackup(ctx context.Context, t *Target, kubeDir, root string) (info BackupInfo, need, avail int64, err error) {
	dir, err := backupDir(root, t.RunID)
	if err != nil {
		return info, 0, 0, err
	}
	cmd := backupScript(kubeDir, root, dir, true, 0)
	out, err := t.Run(ctx, cmd)
	if err != nil {
		return info, 0, 0, fmt.Errorf("measuring a backup of %s: %w", kubeDir, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 4 || f[0] != "plan" {
		return info, 0, 0, fmt.Errorf("measuring a backup of %s: unexpected output %q", kubeDir, out)
	}
	files, _ := strconv.Atoi(f[1])
	need, _ = strconv.ParseInt(f[2], 10, 64)
	avail, _ = strconv.ParseInt(f[3], 10, 64)
	info = BackupInfo{Host: t.Name(), RunID: t.RunID, Dir: dir, KubeDir: kubeDir, Files: files, Restore: restoreHint(dir)}
	if avail < need {
		return info, need, avail, fmt.Errorf("not enough space for a backup in %s: %d KiB free, %d KiB needed", root, avail, need)
	}
	return info, need, avail, nil
}

// takeBackup copies kubeDir to <root>/<run id>, verifies the copy against a
// checksum manifest, and records it in the host's facts. On any failure the
// partial backup is removed and the host is otherwise unchanged.
func takeBackup(ctx context.Context, t *Target, kubeDir, root string, keep int) (BackupInfo, error) {
	dir, err := backupDir(root, t.RunID)
	if err != nil {
		return BackupInfo{}, err
	}
	out, err := t.RunInput(ctx, backupScript(kubeDir, root, dir, false, keep), []byte(restoreScript(kubeDir, dir)))
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup of %s to %s: %w", kubeDir, dir, err)
	}
	f := strings.Fields(lastLine(out))
	if len(f) != 4 || f[0] != "ok" {
		return BackupInfo{}, fmt.Errorf("backup of %s to %s: unexpected output %q", kubeDir, dir, lastLine(out))
	}
	files, _ := strconv.Atoi(f[1])
	bytes, _ := strconv.ParseInt(f[2], 10, 64)
	pruned, _ := strconv.Atoi(f[3])
	info := BackupInfo{Host: t.Name(), RunID: t.RunID, Dir: dir, KubeDir: kubeDir, Files: files, Bytes: bytes, Pruned: pruned, Restore: restoreHint(dir)}
	t.Facts.Set(factBackup, info)
	return info, nil
}

// runRestore restores kubeDir from the backup in dir.
//
// It is the run's own undo, so it passes --force: changes made since the
// renewal were made during this run, under its lock (by later steps, or
// by a step that failed part way), and undoing the run means undoing them
// too. restore.sh run by hand later refuses such a tree without --force.
func runRestore(ctx context.Context, t *Target, kubeDir, dir string) (string, error) {
	out, err := t.Run(ctx, shellquote.Script(restoreScript(kubeDir, dir), "--force"))
	if err != nil {
		return string(out), fmt.Errorf("restoring %s from %s: %w", kubeDir, dir, err)
	}
	return string(out), nil
}

// backupFact returns this run's verified backup of kubeDir, if a step took one.
func backupFact(t *Target, key, kubeDir string) (BackupInfo, bool) {
	v, ok := t.Facts.Get(key)
	if !ok {
		return BackupInfo{}, false
	}
	b, ok := v.(BackupInfo)
	if !ok || b.KubeDir != kubeDir {
		return BackupInfo{}, false
	}
	return b, true
}

// prunedNote says how many older backups retention removed, if any.
func prunedNote(pruned, keep int) string {
	if pruned == 0 {
		return ""
	}
	return fmt.Sprintf("; removed %d older backup(s), keeping the newest %d", pruned, keep)
}
