# backup.sh KD ROOT B PLAN: copy kubeadm's pki, *.conf and manifests from KD
# into the backup directory B (under ROOT), checksum and verify the copy, and
# write stdin to B/restore.sh. Prints "ok FILES BYTES". On any failure B is
# removed. With PLAN=1 it changes nothing and prints "plan FILES NEED_KIB
# AVAIL_KIB". Exit 3: nothing to back up or B exists; 4: not enough space;
# 5: the copy does not match.
set -eu
umask 077
kd=$1 root=$2 b=$3 plan=$4
[ -d "$kd" ] || { echo "$kd does not exist" >&2; exit 3; }
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
