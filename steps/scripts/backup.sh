# backup.sh KD ROOT B PLAN KEEP: copy kubeadm's pki, *.conf and manifests
# from KD into the backup directory B (under ROOT), checksum and verify the
# copy, and write stdin to B/restore.sh. The backup holds the CA keys: its
# directories are 0700 and its files 0600, and B/MODES keeps each file's
# own mode and owner for restore.sh. Then only the newest KEEP complete
# backups in ROOT are kept (0: all). Prints "ok FILES BYTES PRUNED". On any
# failure B is removed. With PLAN=1 it changes nothing and prints "plan
# FILES NEED_KIB AVAIL_KIB". Exit 3: nothing to back up or B exists; 4: not
# enough space; 5: the copy does not match.
# with_parts, sums and count_files come from tree_lib.sh, sent in front.
set -eu
umask 077
kd=$1 root=$2 b=$3 plan=$4 keep=$5
[ -d "$kd" ] || { echo "$kd does not exist" >&2; exit 3; }
cd "$kd"
with_parts true || { echo "nothing to back up: no pki, *.conf or manifests in $kd" >&2; exit 3; }
files=$(with_parts count_files)
need=$(with_parts du -sk | awk '{ s += $1 } END { print s + 64 }')
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
with_parts cp -a -t "$b/files/"
with_parts sums > "$b/SHA256SUMS"
(cd "$b/files" && sha256sum -c --quiet --strict "$b/SHA256SUMS") >&2 || { echo "the copy in $b does not match $kd" >&2; exit 5; }
# Each file's own mode and owner, for restore.sh; the copies themselves are
# for root's eyes only.
(cd "$b/files" && find . -type f -print0 | sort -z | xargs -0 -r stat -c '%a %u %g %n') | sed 's|^\([^ ]* [^ ]* [^ ]*\) \./|\1 |' > "$b/MODES"
find "$b/files" -type f -exec chmod 0600 {} +
find "$b" -type d -exec chmod 0700 {} +
cat > "$b/restore.sh"
chmod 700 "$b/restore.sh"
files=$(wc -l < "$b/SHA256SUMS")
bytes=$(find "$b/files" -type f -exec cat {} + | wc -c)
date -u +%Y-%m-%dT%H:%M:%SZ > "$b/COMPLETE"
sync
trap - EXIT
# Retention: run ids start with their UTC time, so names sort by age.
pruned=0
if [ "$keep" -gt 0 ]; then
  old=$(find "$root" -mindepth 1 -maxdepth 1 -type d -name '[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z-*' \
    -exec test -f '{}/COMPLETE' ';' -print | sort -r | tail -n +"$((keep + 1))")
  while IFS= read -r dir; do
    name=${dir##*/}
    case $name in '' | *[!0-9A-Za-z_.-]*) continue ;; esac
    if [ "$dir" = "$root/$name" ] && [ "$dir" != "$b" ]; then
      rm -rf -- "$dir" && pruned=$((pruned + 1))
    fi
  done <<EOF
$old
EOF
fi
echo "ok $files $bytes $pruned"
