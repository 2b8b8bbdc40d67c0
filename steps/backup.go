package steps

import (
	"context"
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
	// Restore is the command a person runs on the host to restore it.
	Restore string `json:"restore"`
}

// Backup copies <kubernetes_dir>/pki, *.conf and manifests to <backup_dir>/<run id>/.
type Backup struct {
	// KubeDir is the directory backed up.
	KubeDir string
	// Root is the directory under which <run id>/ is created.
	Root string
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
	info, err := takeBackup(ctx, t, s.KubeDir, s.Root)
	if err != nil {
		return Result{}, err
	}
	return Result{
		Changed: true,
		Message: fmt.Sprintf("run %s: backup of %s in %s (%d files, checksums verified); restore with: %s", info.RunID, info.KubeDir, info.Dir, info.Files, info.Restore),
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

// backupScript copies, checksums and verifies; with plan=1 it only measures.
// Its stdin becomes restore.sh.
func backupScript(kubeDir, root, dir string, plan bool) string {
	mode := "0"
	if plan {
		mode = "1"
	}
	return sh(fmt.Sprintf("set -eu\numask 077\nkd=%s; root=%s; b=%s; plan=%s\n", shellquote.Quote(kubeDir), shellquote.Quote(root), shellquote.Quote(dir), mode) + `[ -d "$kd" ] || { echo "$kd does not exist" >&2; exit 3; }
cd "$kd"
set --
if [ -d pki ]; then set -- "$@" pki; fi
for f in *.conf; do if [ -f "$f" ]; then set -- "$@" "$f"; fi; done
if [ -d manifests ]; then set -- "$@" manifests; fi
[ $# -gt 0 ] || { echo "nothing to back up: no pki, *.conf or manifests in $kd" >&2; exit 3; }
files=$(find "$@" -type f | wc -l)
need=$(du -sk "$@" | awk '{ s += $1 } END { print s + 64 }')
d=$root; while [ ! -d "$d" ]; do d=$(dirname "$d"); done
avail=$(df -Pk "$d" | awk 'NR == 2 { print $4 }')
if [ "$plan" = 1 ]; then
  [ ! -f "$b/COMPLETE" ] || { echo "backup dir $b already exists" >&2; exit 3; }
  echo "plan $files $need $avail"; exit 0
fi
if [ "$avail" -lt "$need" ]; then echo "not enough space for a backup in $root: $avail KiB free, $need KiB needed; nothing was changed" >&2; exit 4; fi
mkdir -p "$root"
# A backup dir of this run without COMPLETE is this run's own interrupted attempt.
if [ -d "$b" ] && [ ! -f "$b/COMPLETE" ]; then rm -rf "$b"; fi
mkdir "$b" || { echo "backup dir $b already exists" >&2; exit 3; }
trap 'rm -rf "$b"' EXIT
mkdir "$b/files"
cp -a "$@" "$b/files/"
find "$@" -type f -print0 | sort -z | xargs -0 -r sha256sum -- > "$b/SHA256SUMS"
(cd "$b/files" && sha256sum -c --quiet --strict "$b/SHA256SUMS") >&2 || { echo "the copy in $b does not match $kd" >&2; exit 5; }
cat > "$b/restore.sh"
chmod 700 "$b/restore.sh"
files=$(wc -l < "$b/SHA256SUMS")
bytes=$(find "$b/files" -type f -exec cat {} + | wc -c)
date -u +%Y-%m-%dT%H:%M:%SZ > "$b/COMPLETE"
sync
trap - EXIT
echo "ok $files $bytes"
`)
}

// restoreScript restores kubeDir from the backup in dir, byte for byte: files
// that differ (content, mode or owner) are replaced atomically, files that
// did not exist at backup time are removed, and the result is verified.
func restoreScript(kubeDir, dir string) string {
	return "#!/bin/sh\n# kplay: restore " + kubeDir + " (pki, *.conf, manifests) from the backup in " + dir + ".\n" +
		fmt.Sprintf("set -eu\nkd=%s; b=%s\n", shellquote.Quote(kubeDir), shellquote.Quote(dir)) + `[ -f "$b/COMPLETE" ] || { echo "backup $b is incomplete; not restoring" >&2; exit 3; }
if grep -q '^\\' "$b/SHA256SUMS"; then echo "backup $b has unusual file names; restore by hand with cp -a from $b/files" >&2; exit 3; fi
(cd "$b/files" && sha256sum -c --quiet --strict "$b/SHA256SUMS") >&2 || { echo "backup $b fails its checksums; not restoring" >&2; exit 3; }
mkdir -p "$kd"
while read -r sum p; do
  src="$b/files/$p"; dst="$kd/$p"
  if [ -f "$dst" ] && [ ! -L "$dst" ] && [ "$(sha256sum < "$dst" | cut -d' ' -f1)" = "$sum" ] &&
     [ "$(stat -c %a:%u:%g "$dst")" = "$(stat -c %a:%u:%g "$src")" ]; then continue; fi
  dd=$(dirname "$dst"); tmp="$dd/.$(basename "$dst").kplay-restore"
  mkdir -p "$dd"
  cp -a "$src" "$tmp"
  mv -f "$tmp" "$dst"
  echo "restored $p"
done < "$b/SHA256SUMS"
list=$(mktemp); trap 'rm -f "$list"' EXIT
cut -c67- "$b/SHA256SUMS" > "$list"
cd "$kd"
for d in pki manifests; do
  [ -d "$d" ] || continue
  find "$d" -type f | while IFS= read -r f; do
    if ! grep -qxF -- "$f" "$list"; then rm -f -- "$f"; echo "removed $f"; fi
  done
done
for f in *.conf; do
  if [ -f "$f" ] && ! grep -qxF -- "$f" "$list"; then rm -f -- "$f"; echo "removed $f"; fi
done
sha256sum -c --quiet --strict "$b/SHA256SUMS" >&2
echo "verified: $kd matches backup $b"
`
}

// restoreHint is what a person runs on the host to restore by hand.
func restoreHint(dir string) string { return "sh " + shellquote.Quote(dir+"/restore.sh") }

// planBackup measures what a backup would copy, read-only.
func planBackup(ctx context.Context, t *Target, kubeDir, root string) (info BackupInfo, need, avail int64, err error) {
	dir, err := backupDir(root, t.RunID)
	if err != nil {
		return info, 0, 0, err
	}
	cmd := backupScript(kubeDir, root, dir, true)
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
func takeBackup(ctx context.Context, t *Target, kubeDir, root string) (BackupInfo, error) {
	dir, err := backupDir(root, t.RunID)
	if err != nil {
		return BackupInfo{}, err
	}
	out, err := t.RunInput(ctx, backupScript(kubeDir, root, dir, false), []byte(restoreScript(kubeDir, dir)))
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup of %s to %s: %w", kubeDir, dir, err)
	}
	f := strings.Fields(lastLine(out))
	if len(f) != 3 || f[0] != "ok" {
		return BackupInfo{}, fmt.Errorf("backup of %s to %s: unexpected output %q", kubeDir, dir, lastLine(out))
	}
	files, _ := strconv.Atoi(f[1])
	bytes, _ := strconv.ParseInt(f[2], 10, 64)
	info := BackupInfo{Host: t.Name(), RunID: t.RunID, Dir: dir, KubeDir: kubeDir, Files: files, Bytes: bytes, Restore: restoreHint(dir)}
	t.Facts.Set(factBackup, info)
	return info, nil
}

// runRestore restores kubeDir from the backup in dir.
func runRestore(ctx context.Context, t *Target, kubeDir, dir string) (string, error) {
	out, err := t.Run(ctx, sh(restoreScript(kubeDir, dir)))
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
