# restore.sh, the body of the restore.sh kplay writes into every backup: it
# restores $kd (pki, *.conf, manifests) from the backup in $b, byte for
# byte. Files that differ (content, mode or owner) are replaced atomically,
# files that did not exist at backup time are removed, and the result is
# verified. kplay puts kd= and b= (quoted), then tree_lib.sh, in front.
#
# Usage: sh restore.sh [--force]
# When the run that took the backup recorded the tree it left ($b/AFTER),
# and $kd no longer matches it, something changed it since: restoring would
# undo that too, so it refuses (exit 4) unless given --force.
set -eu
: "${kd:?}" "${b:?}"
force=
case ${1-} in
--force) force=1 ;;
'') ;;
*) echo "usage: sh $b/restore.sh [--force]" >&2; exit 2 ;;
esac
[ -f "$b/COMPLETE" ] || { echo "backup $b is incomplete; not restoring" >&2; exit 3; }
if grep -q '^[\]' "$b/SHA256SUMS"; then echo "backup $b has unusual file names; restore by hand with cp -a from $b/files" >&2; exit 3; fi
(cd "$b/files" && sha256sum -c --quiet --strict "$b/SHA256SUMS") >&2 || { echo "backup $b fails its checksums; not restoring" >&2; exit 3; }
if [ -f "$b/AFTER" ] && [ -z "$force" ] && [ -d "$kd" ]; then
  now=$(cd "$kd" && { with_parts sums || true; })
  if [ "$now" != "$(cat "$b/AFTER")" ]; then
    echo "$kd changed since the kplay run that took this backup left it:" >&2
    printf '%s\n' "$now" | diff "$b/AFTER" - | sed -n 's/^[<>] [0-9a-f]* *//p' | sort -u | sed 's/^/  /' >&2 || true
    echo "restoring would undo those changes too; check them, then run: sh $b/restore.sh --force" >&2
    exit 4
  fi
fi
mkdir -p "$kd"
# meta P: the mode, owner and group P had when backed up ("mode:uid:gid").
meta() {
  if [ -f "$b/MODES" ]; then
    awk -v p="$1" '{ n = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", n); if (n == p) { print $1 ":" $2 ":" $3; exit } }' "$b/MODES"
  else
    stat -c %a:%u:%g "$b/files/$1" # a backup made before MODES existed kept them on the copy
  fi
}
while read -r sum p; do
  src="$b/files/$p"; dst="$kd/$p"
  want=$(meta "$p")
  if [ -f "$dst" ] && [ ! -L "$dst" ] && [ "$(sha256sum < "$dst" | cut -d' ' -f1)" = "$sum" ] &&
     [ "$(stat -c %a:%u:%g "$dst")" = "$want" ]; then continue; fi
  dd=$(dirname "$dst"); tmp="$dd/.$(basename "$dst").kplay-restore"
  mkdir -p "$dd"
  cp -a "$src" "$tmp"
  chown "${want#*:}" "$tmp"
  chmod "${want%%:*}" "$tmp"
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
